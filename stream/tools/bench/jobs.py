"""Runs each bench job in a fresh interpreter, and decides which jobs to run (emo-stream and naive at each N)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from emostream.stream.tools.bench.configs import CONFIGS, NAIVE_STOP_MS
from emostream.stream.tools.bench.dialogues import Dialogue
from emostream.stream.tools.bench.slowdown import Slowdown, limited
from emostream.stream.tools.bench.summary import summarise_streams


def run_in_subprocess(job: dict, workdir: Path, timeout_s: float, slowdown: Slowdown | None = None) -> dict:
    """One job in a fresh interpreter: its peak RSS and CPU time are its own; a crash or hang is a result too.
    With ``slowdown`` the interpreter runs under that CPU limit, and the job says so (``limit``)."""
    job = job | {"limit": slowdown.label if slowdown else "", "cpu_fraction": slowdown.fraction if slowdown else 1.0}
    tag = f"{job['kind']}-{job.get('config', 'asr')}-{job.get('streams', 0)}-{'rt' if job.get('realtime') else 'fast'}"
    tag += f"-{job['limit'].replace(' ', '')}" if slowdown else ""
    job_path, result_path = workdir / f"{tag}.job.json", workdir / f"{tag}.result.json"
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, "-m", "emostream.stream.tools.bench.cli", "--worker", str(job_path), str(result_path)]
    print(f"emo-bench: running {tag} ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        with limited(slowdown) as preexec:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, preexec_fn=preexec)
    except subprocess.TimeoutExpired:
        return {"job": job, "failed": f"timed out after {timeout_s:.0f} s"}
    if p.returncode != 0 or not result_path.exists():
        return {"job": job, "failed": f"exit {p.returncode}: {p.stderr.strip()[-2000:]}"}
    print(f"emo-bench: {tag} done in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return {"job": job, **json.loads(result_path.read_text())}


def realtime_runs(streams: list[int], dialogues: list[Dialogue], workdir: Path,
                  slowdowns: list[Slowdown | None]) -> list[dict]:
    """emo-stream and naive at each N (and each CPU limit), interleaved so that load drift on the shared machine
    hits all of them alike.

    The naive pipeline stops growing after the first N at which it is hopelessly behind (p95 over
    ``NAIVE_STOP_MS`` or a final missing): more streams would only take longer to say the same.
    """
    raws, naive_fell_behind = [], set()
    longest = max(d.duration_s for d in dialogues)
    for n in streams:
        for name in CONFIGS:
            for slowdown in slowdowns:
                if name == "naive" and slowdown in naive_fell_behind:
                    continue
                job = {"kind": "stream", "config": name, "streams": n, "realtime": True,
                       "dialogues": [d.__dict__ for d in dialogues]}
                raw = run_in_subprocess(job, workdir, 120 + longest * (2 + n), slowdown)
                raws.append(raw)
                summary = summarise_streams(raw)
                if name == "naive" and not (summary.get("all_finals") and summary["live_ms"][95] <= NAIVE_STOP_MS):
                    naive_fell_behind.add(slowdown)
    return raws


def fast_runs(fast_streams: list[int], dialogues: list[Dialogue], workdir: Path,
              slowdowns: list[Slowdown | None]) -> list[dict]:
    raws = []
    for n in fast_streams:
        for name in CONFIGS:
            for slowdown in slowdowns:
                job = {"kind": "stream", "config": name, "streams": n, "realtime": False,
                       "dialogues": [d.__dict__ for d in dialogues]}
                raws.append(run_in_subprocess(job, workdir, 300 + 60 * n, slowdown))
    return raws
