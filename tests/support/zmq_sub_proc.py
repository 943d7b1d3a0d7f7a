"""A ZeroMQ SUB socket meant to run in its own process (see ``messaging.ZmqCollector``).

Usage: ``python zmq_sub_proc.py ENDPOINT [--prefix P] [--bind] [--timeout-s T]``

Prints one JSON object per line on stdout: ``{"event": "ready"}`` once subscribed, then
``{"event": "message", "t": <unix time received>, "frames": [<base64>, ...]}`` per multipart message, and finally
``{"event": "end", "count": N, "reason": "stop" | "timeout"}``. It stops when stdin reaches EOF or reads ``stop``,
or when the timeout expires.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time

import zmq


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("endpoint")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--bind", action="store_true", help="bind the SUB socket instead of connecting it")
    ap.add_argument("--timeout-s", type=float, default=120.0)
    args = ap.parse_args(argv)

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)  # never drop on our side
    sock.setsockopt(zmq.SUBSCRIBE, args.prefix.encode())
    if args.bind:
        sock.bind(args.endpoint)
    else:
        sock.connect(args.endpoint)
    _emit({"event": "ready"})

    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    stdin_fd = sys.stdin.fileno()
    poller.register(stdin_fd, zmq.POLLIN)

    count, reason = 0, "timeout"
    deadline = time.monotonic() + args.timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        events = dict(poller.poll(timeout=min(remaining, 0.5) * 1000))
        if sock in events:
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                count += 1
                _emit({"event": "message", "t": time.time(), "frames": [base64.b64encode(f).decode() for f in frames]})
        if stdin_fd in events:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                reason = "stop"
                break
    _emit({"event": "end", "count": count, "reason": reason})
    sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
