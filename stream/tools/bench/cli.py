"""``emo-bench``: streaming latency and throughput of emo-stream, side by side with a naive pipeline (issue 6).

Runs each job in its own subprocess (jobs.py, worker.py) and writes the report (report.py); the package
docstring says what it measures and why.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from emostream.stream.tools.bench.configs import ASR_SETTINGS, QUICK_ASR_SETTINGS
from emostream.stream.tools.bench.dialogues import example_dialogue, real_dialogues, repo_root, shortened
from emostream.stream.tools.bench.jobs import fast_runs, realtime_runs, run_in_subprocess
from emostream.stream.tools.bench.report import report, write
from emostream.stream.tools.bench.server_mode import compare, telephone_copy
from emostream.stream.tools.bench.server_plot import plot
from emostream.stream.tools.bench.slowdown import Slowdown, SlowdownUnavailable, check
from emostream.stream.tools.bench.tables import fmt_load
from emostream.stream.tools.bench.worker import worker_main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emo-bench", description=__doc__.splitlines()[0])
    p.add_argument("--streams", default="1,2,4,8,12,16",
                   help="concurrent real-time stream counts (default 1,2,4,8,12,16)")
    p.add_argument("--fast-streams", default="1,4", help="stream counts for fast replay (default 1,4)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the first 2 turns of the example, 1 real-time stream, 1 fast stream, 2 ASR rows")
    p.add_argument("--no-asr", action="store_true",
                   help="skip the sub-benchmark of ASR alone (WER and decode time per model, window and channel)")
    slow = p.add_mutually_exclusive_group()
    slow.add_argument("--cpu-quota", type=float, metavar="F",
                      help="also run every job with F of this machine's CPU time (a cgroup quota, e.g. 0.5) and "
                           "report both side by side")
    slow.add_argument("--cpus", type=int, metavar="N",
                      help="also run every job pinned to N cores (as taskset does) and report both side by side")
    p.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder for results.json, latency_hist.png")
    p.add_argument("--from-results", type=Path, metavar="JSON",
                   help="re-render the tables and histogram from a saved results.json instead of measuring")
    p.add_argument("--server-calls", metavar="N,...",
                   help="instead: N concurrent live calls through `emo-stream serve` (Twilio, 8 kHz mu-law, from "
                        "other processes) against the same calls replayed in-process; writes server.md/json")
    p.add_argument("--repeats", type=int, default=1, metavar="R",
                   help="with --server-calls: run each count R times per side, in ABBA order (in-process, server, "
                        "server, in-process, ...) so that the machine's drift in speed hits both sides alike; the "
                        "table gives medians and the median paired p95 ratio (default 1)")
    p.add_argument("--cluster-calls", metavar="N,...",
                   help="instead: N live calls through the single-process server on 1 core, then `emo-stream serve "
                        "--cluster` on Ray nodes of 1 core (1 node, 2 nodes); writes cluster.md/json (cluster.py)")
    p.add_argument("--worker", nargs=2, type=Path, metavar=("JOB", "RESULT"), help=argparse.SUPPRESS)
    return p


def stream_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"emo-bench: --streams takes numbers separated by commas, got {text!r}") from None
    if not counts or counts[0] < 1:
        raise SystemExit(f"emo-bench: stream counts must be ≥ 1, got {text!r}")
    return counts


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}, CPU only"


def slowdowns(a: argparse.Namespace) -> list[Slowdown | None]:
    """Full speed, and the limit the flags ask for, checked before anything runs."""
    if a.cpu_quota is None and a.cpus is None:
        return [None]
    slowdown = Slowdown(quota=a.cpu_quota, cpus=a.cpus)
    try:
        check(slowdown)
    except SlowdownUnavailable as e:
        raise SystemExit(f"emo-bench: {e}") from None
    return [None, slowdown]


def collect(a: argparse.Namespace, workdir: Path) -> dict:
    """Builds the dialogues and runs every job: the raw material of the report, kept whole in results.json."""
    limits = slowdowns(a)
    root = repo_root()
    example = example_dialogue(root)
    if a.quick:
        dialogues = [shortened(example, 2, workdir)]
        streams, fast_streams, asr_settings = [1], [1], QUICK_ASR_SETTINGS
    else:
        dialogues = [example, *real_dialogues(root, workdir)]
        streams, fast_streams, asr_settings = stream_counts(a.streams), stream_counts(a.fast_streams), ASR_SETTINGS
    loadavg_before = os.getloadavg()
    rt_raw = realtime_runs(streams, dialogues, workdir, limits)
    fast_raw = fast_runs(fast_streams, dialogues, workdir, limits)
    plain = [d.__dict__ for d in dialogues]
    asr_raw = None if a.no_asr else run_in_subprocess(
        {"kind": "asr", "settings": asr_settings, "dialogues": plain,
         "phone_dialogues": [telephone_copy(d, workdir).__dict__ for d in dialogues]}, workdir, 1800)
    encoder_raw = [run_in_subprocess({"kind": "encoder", "dialogues": plain}, workdir, 900, limit) for limit in limits]
    return {"command": " ".join(["emo-bench", *sys.argv[1:]]), "machine": machine(),
            "measured": datetime.datetime.now().isoformat(timespec="minutes"), "loadavg_before": loadavg_before,
            "loadavg_after": os.getloadavg(), "dialogues": [d.__dict__ for d in dialogues],
            "raw": {"realtime": rt_raw, "fast_replay": fast_raw, "asr": asr_raw, "encoder": encoder_raw}}


def server_comparison(a: argparse.Namespace) -> int:
    root = repo_root()
    loadavg_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="emo-bench-") as tmp:
        example = example_dialogue(root)
        dialogues = [shortened(example, 2, Path(tmp))] if a.quick else [example, *real_dialogues(root, Path(tmp))]
        result = compare(stream_counts(a.server_calls), dialogues, Path(tmp), a.repeats)
    result |= {"command": " ".join(["emo-bench", *sys.argv[1:]]), "machine": machine(),
               "measured": datetime.datetime.now().isoformat(timespec="minutes"), "loadavg_before": loadavg_before,
               "loadavg_after": os.getloadavg()}
    result["markdown"] += (f"\nLoad average (1, 5, 15 min) before: {fmt_load(loadavg_before)}; after: "
                           f"{fmt_load(result['loadavg_after'])} on {os.cpu_count()} cores.\n")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "server.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / "server.md").write_text(result["markdown"])
    plot(json.loads((a.out / "server.json").read_text()), a.out / "server.png")
    print(result["markdown"])
    return 0


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if a.worker:
        return worker_main(*a.worker)
    if a.repeats < 1 or (a.repeats > 1 and not a.server_calls):
        raise SystemExit(f"emo-bench: --repeats takes a count ≥ 1 and applies to --server-calls, got {a.repeats}")
    if a.from_results:
        write(report(json.loads(a.from_results.read_text())), a.out)
        return 0
    if a.server_calls:
        return server_comparison(a)
    if a.cluster_calls:
        from emostream.stream.tools.bench.cluster import cluster_main  # imports Ray: only when asked

        return cluster_main(stream_counts(a.cluster_calls), a.quick, a.out, " ".join(["emo-bench", *sys.argv[1:]]))
    with tempfile.TemporaryDirectory(prefix="emo-bench-") as tmp:
        collected = collect(a, Path(tmp))
    # The measurements first (a long run is not lost to a rendering error); --from-results re-renders them.
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(collected, separators=(",", ":"), default=str) + "\n")
    write(report(collected), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
