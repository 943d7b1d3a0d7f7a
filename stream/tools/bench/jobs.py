"""Runs each bench job in a fresh interpreter, and decides which jobs to run (emo-stream and naive at each N)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from emostream.stream.tools.bench.configs import CONFIGS, NAIVE_STOP_MS
from emostream.stream.tools.bench.dialogues import Dialogue
from emostream.stream.tools.bench.summary import summarise_streams


def run_in_subprocess(job: dict, workdir: Path, timeout_s: float) -> dict:
    """One job in a fresh interpreter: its peak RSS and CPU time are its own; a crash or hang is a result too."""
    tag = f"{job['kind']}-{job.get('config', 'asr')}-{job.get('streams', 0)}-{'rt' if job.get('realtime') else 'fast'}"
    job_path, result_path = workdir / f"{tag}.job.json", workdir / f"{tag}.result.json"
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, "-m", "emostream.stream.tools.bench.cli", "--worker", str(job_path), str(result_path)]
    print(f"emo-bench: running {tag} ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"job": job, "failed": f"timed out after {timeout_s:.0f} s"}
    if p.returncode != 0 or not result_path.exists():
        return {"job": job, "failed": f"exit {p.returncode}: {p.stderr.strip()[-2000:]}"}
    print(f"emo-bench: {tag} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return {"job": job, **json.loads(result_path.read_text())}


def realtime_runs(streams: list[int], dialogues: list[Dialogue], workdir: Path) -> list[dict]:
    """emo-stream and naive at each N, interleaved so that load drift on the shared machine hits both alike.

    The naive pipeline stops growing after the first N at which it is hopelessly behind (p95 over
    ``NAIVE_STOP_MS`` or a final missing): more streams would only take longer to say the same.
    """
    raws, naive_fell_behind = [], False
    longest = max(d.duration_s for d in dialogues)
    for n in streams:
        for name in CONFIGS:
            if name == "naive" and naive_fell_behind:
                continue
            job = {"kind": "stream", "config": name, "streams": n, "realtime": True,
                   "dialogues": [d.__dict__ for d in dialogues]}
            raw = run_in_subprocess(job, workdir, timeout_s=120 + longest * (2 + n))
            raws.append(raw)
            summary = summarise_streams(raw)
            if name == "naive" and not (summary.get("all_finals") and summary["live_ms"][95] <= NAIVE_STOP_MS):
                naive_fell_behind = True
    return raws


def fast_runs(fast_streams: list[int], dialogues: list[Dialogue], workdir: Path) -> list[dict]:
    raws = []
    for n in fast_streams:
        for name in CONFIGS:
            job = {"kind": "stream", "config": name, "streams": n, "realtime": False,
                   "dialogues": [d.__dict__ for d in dialogues]}
            raws.append(run_in_subprocess(job, workdir, timeout_s=300 + 60 * n))
    return raws
