"""``emo-bench --cluster-calls N,...``: how calls kept up scale with Ray nodes, and what Ray adds per utterance.

Three servers in turn, each fed the same telephone calls (``server_mode.telephone_copy``) at real time by a Twilio
sender process (``server_mode.calls``): the single-process ``emo-stream serve`` pinned to one core; ``emo-stream
serve --cluster`` on a Ray cluster of one node pinned to one core; the same on two nodes pinned to one core each
(every deployment with one replica per node). Nodes are ``ray.cluster_utils.Cluster`` nodes started with this
process's CPU affinity set to their core, which their raylet and workers inherit; the bench ends them itself. Each
server appends its events to a JSON Lines file which the bench tails, so every server is read on the same bus the
same way; latency is from the end of an utterance's audio leaving the sender to its final event read there. A count
is kept up when every final arrived and live p95 ≤ ``P95_LIMIT_MS``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from emostream.stream.tools.bench.configs import P95_LIMIT_MS
from emostream.stream.tools.bench.dialogues import Dialogue, example_dialogue, repo_root, shortened
from emostream.stream.tools.bench.scoring import match, pct
from emostream.stream.tools.bench.server_mode import TOKEN, EventTail, calls, free_port, telephone_copy
from emostream.stream.tools.bench.tables import fmt, fmt_load

CLUSTER_CONFIG = """
metrics: {{interval_s: 0}}
server: {{max_calls: 64, idle_timeout_s: 60.0}}
cluster:
  proxy_location: HeadOnly
  ingress: {{min_replicas: {n}, max_replicas: {n}, num_cpus: 0.2, max_replicas_per_node: 1}}
  asr: {{min_replicas: {n}, max_replicas: {n}, num_cpus: 0.2, max_replicas_per_node: 1}}
  features: {{min_replicas: {n}, max_replicas: {n}, num_cpus: 0.2, max_replicas_per_node: 1}}
  text: {{min_replicas: {n}, max_replicas: {n}, num_cpus: 0.2, max_replicas_per_node: 1}}
  inference: {{min_replicas: {n}, max_replicas: {n}, num_cpus: 0.2, max_replicas_per_node: 1}}
"""
SINGLE_CONFIG = "metrics: {interval_s: 0}\nserver: {max_calls: 64, idle_timeout_s: 60.0}\nsource: {max_streams: 64}\n"


@contextlib.contextmanager
def pinned(core: int) -> Iterator[None]:
    """This process on one core while it starts a node: the node's processes inherit the affinity."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class JsonlBus(EventTail):
    """Tails a JSON Lines events file in a thread: every final event with the Unix time it was read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__()

    def _run(self) -> None:
        while not self.path.exists():
            time.sleep(0.01)
        with self.path.open() as f:
            buffered = ""
            while self.running:
                chunk = f.read()
                if not chunk:
                    time.sleep(0.005)
                    continue
                read_at = time.time()
                buffered += chunk
                *lines, buffered = buffered.split("\n")
                with self.lock:
                    self.events += [(read_at, e) for e in map(json.loads, filter(None, lines))
                                    if e["type"] == "emotion"]


class Serve:
    """``emo-stream serve`` (``--cluster ADDRESS`` or on ``core``), its events appended to a file the bench tails."""

    def __init__(self, workdir: Path, name: str, config: str, cluster: str = "", core: int | None = None) -> None:
        self.port = free_port()
        cfg, self.log, events = workdir / f"{name}.yaml", workdir / f"{name}.log", workdir / f"{name}.jsonl"
        cfg.write_text(config)
        cmd = [sys.executable, "-m", "emostream.stream.cli", "serve", "--port", str(self.port), "--config", str(cfg),
               "--jsonl", str(events), "--no-stdout", *(["--cluster", cluster] if cluster else [])]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, EMO_STREAM_TOKENS=TOKEN),
                                         preexec_fn=None if core is None else lambda: os.sched_setaffinity(0, {core}))
        deadline = time.monotonic() + 600
        while "emo-stream: serving" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"emo-bench: {name} did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.5)
        self.bus = JsonlBus(events)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio?token={TOKEN}"

    def stop(self) -> None:
        if hasattr(self, "bus"):
            self.bus.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure(server: Serve, counts: list[int], dialogues: list[Dialogue], label: str) -> list[dict[str, Any]]:
    calls(server, dialogues[:1], [f"{label}-warm-up"], speed=0)  # first calls of every model replica
    rows = []
    for n in counts:
        ids = [f"{label}{n}-{i + 1:02d}" for i in range(n)]
        t0 = calls(server, dialogues, ids, speed=1.0)
        time.sleep(0.5)  # the last lines reach the tail
        live, turns, finals = [], 0, 0
        for i, sid in enumerate(ids):
            d = dialogues[i % len(dialogues)]
            got = server.bus.finals(sid)
            finals += len(got)
            read_at = {e["utterance_id"]: t for t, e in got}
            matched = [e for e in match([e for _, e in got], d.turns) if e]
            turns += len(d.turns)
            live += [(read_at[e["utterance_id"]] - (t0[sid] + e["end_s"])) * 1000 for e in matched]
        p95 = pct(live, 95)
        rows.append({"calls": n, "turns": turns, "finals": finals, "matched": len(live),
                     "live_ms": {q: pct(live, q) for q in (50, 95)},
                     "kept_up": len(live) == turns == finals and p95 is not None and p95 <= P95_LIMIT_MS})
    return rows


def cluster_runs(nodes: int, counts: list[int], dialogues: list[Dialogue], workdir: Path) -> list[dict[str, Any]]:
    from ray.cluster_utils import Cluster

    with pinned(0):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for core in range(1, nodes):
            with pinned(core):
                cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        server = Serve(workdir, f"cluster{nodes}", CLUSTER_CONFIG.format(n=nodes), cluster=cluster.address)
        try:
            return measure(server, counts, dialogues, f"n{nodes}-")
        finally:
            server.stop()
    finally:
        cluster.shutdown()


def single_runs(counts: list[int], dialogues: list[Dialogue], workdir: Path) -> list[dict[str, Any]]:
    single = Serve(workdir, "single", SINGLE_CONFIG, core=0)
    try:
        return measure(single, counts, dialogues, "sp-")
    finally:
        single.stop()


def compare_cluster(counts: list[int], dialogues: list[Dialogue], workdir: Path,
                    save: Callable[[dict[str, Any]], None]) -> None:
    """Each server in turn; ``save`` gets the result so far after each, so that what was measured survives a
    later server that fails to start on a loaded machine."""
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("emo-bench: --cluster-calls pins two nodes to two cores; this process may use fewer")
    phone = [telephone_copy(d, workdir) for d in dialogues]
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, run in (("single_process_1_core", single_runs),
                      ("cluster_1_node", functools.partial(cluster_runs, 1)),
                      ("cluster_2_nodes", functools.partial(cluster_runs, 2))):
        runs[name] = run(counts, phone, workdir)
        save({"dialogues": [d.__dict__ for d in phone], "runs": runs, "markdown": table(runs)})


def table(runs: dict[str, list[dict]]) -> str:
    lines = ["| calls | " + " | ".join(f"{name}: p50 / p95 ms, finals, kept up" for name in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for i, n in enumerate(r["calls"] for r in next(iter(runs.values()))):
        cells = [f"{fmt(r[i]['live_ms'][50])} / {fmt(r[i]['live_ms'][95])}, {r[i]['matched']}/{r[i]['turns']}, "
                 f"{'yes' if r[i]['kept_up'] else 'no'}" for r in runs.values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    kept = {name: max([r["calls"] for r in rows if r["kept_up"]], default=0) for name, rows in runs.items()}
    lines += ["", "Most calls kept up (every final, live p95 ≤ "
              f"{P95_LIMIT_MS:.0f} ms): " + ", ".join(f"{k} {v}" for k, v in kept.items()) + "."]
    one = runs["single_process_1_core"][0]["live_ms"]
    ray1 = runs["cluster_1_node"][0]["live_ms"] if "cluster_1_node" in runs else {50: None, 95: None}
    if None not in (one[50], ray1[50], one[95], ray1[95]):
        lines.append(f"Ray's added latency at {runs['cluster_1_node'][0]['calls']} call(s), 1 core each: "
                     f"p50 {ray1[50] - one[50]:+.0f} ms, p95 {ray1[95] - one[95]:+.0f} ms.")
    return "\n".join(lines) + "\n"


def cluster_main(counts: list[int], quick: bool, out: Path, command: str) -> int:
    """Runs the comparison and writes ``cluster.md`` / ``cluster.json`` to ``out``, with the load averages."""
    root = repo_root()
    loadavg_before = os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)

    def save(result: dict[str, Any]) -> None:
        result |= {"command": command, "cpus": os.cpu_count(), "loadavg_before": loadavg_before,
                   "measured": datetime.datetime.now().isoformat(timespec="minutes"), "loadavg_after": os.getloadavg()}
        result["markdown"] += (f"\nLoad average (1, 5, 15 min) before: {fmt_load(loadavg_before)}; after: "
                               f"{fmt_load(result['loadavg_after'])} on {os.cpu_count()} cores.\n")
        (out / "cluster.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "cluster.md").write_text(result["markdown"])
        print(result["markdown"], flush=True)

    with tempfile.TemporaryDirectory(prefix="emo-bench-") as tmp:
        example = example_dialogue(root)
        dialogues = [shortened(example, 2, Path(tmp))] if quick else [example]
        compare_cluster(counts, dialogues, Path(tmp), save)
    return 0
