"""A dashboard in its own process without a browser: reads ``/v1/events`` (server-sent events) as an
``EventSource`` would and prints each event as a JSON line on stdout, until every stream named has published its
final summary.

Usage::

    python sse_client.py http://HOST:PORT/v1/events?token=T --until-final ID [ID ...] [--timeout S]

Exits 1 (after printing what it read) when the finals do not all arrive within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--until-final", nargs="+", required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    waiting, deadline = set(args.until_final), time.monotonic() + args.timeout
    with urllib.request.urlopen(args.url, timeout=args.timeout) as stream:  # the server comments every 15 s
        assert stream.headers.get_content_type() == "text/event-stream", stream.headers
        while waiting and time.monotonic() < deadline:
            line = stream.readline()
            if not line:
                break
            if not line.startswith(b"data: "):  # comments (keep-alive) and the blank line ending each event
                continue
            event = json.loads(line[len(b"data: "):])
            print(json.dumps(event), flush=True)
            if event["type"] == "summary" and event["final"]:
                waiting.discard(event["stream_id"])
    if waiting:
        print(f"no final summary of {sorted(waiting)} within {args.timeout} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
