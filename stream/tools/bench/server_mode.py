"""``emo-bench --server-calls N,...``: live calls over the network against the same calls replayed in-process.

Both sides get the same audio: each dialogue is first put through the telephone (8 kHz, G.711 mu-law) and written
as an 8 kHz WAV. The server side starts ``emo-stream serve`` in its own process and, for each N, one sender
process (``twilio_sender.py``) streams N calls at real time as Twilio Media Streams; the bench reads the final
events on the server's ZeroMQ bus, as a supervisor's client would, and dates each against the moment its
utterance's last audio left the sender (``t0 + end_s``). The in-process side is the bench's own real-time job
(``worker.py``) on the same WAVs, the one speaker named as the server names a Twilio inbound track. With
``--repeats R`` both sides run each count R times (``server_summary``: ABBA order, medians, paired p95 ratios); one
warm ``emo-stream serve`` takes every server run and idles while the in-process ones run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from emostream.stream.tools.bench.configs import P95_LIMIT_MS
from emostream.stream.tools.bench.dialogues import Dialogue
from emostream.stream.tools.bench.jobs import run_in_subprocess
from emostream.stream.tools.bench.scoring import match, pct, word_error_rate
from emostream.stream.tools.bench.server_summary import aggregate, schedule, table
from emostream.stream.tools.bench.summary import summarise_streams

TOKEN = "emo-bench-token"
ROLE = "customer"  # server.twilio_roles[0]: the speaker of a Twilio inbound track
START_AFTER_S = 3.0  # time for the sender processes to start and connect before the calls' common start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def telephone_copy(d: Dialogue, workdir: Path) -> Dialogue:
    """The dialogue as a phone line carries it: 8 kHz, mu-law coded and decoded, written as an 8 kHz WAV."""
    import soundfile as sf
    import soxr

    from emostream.stream.server.codecs import decode, encode_mulaw

    audio, sr = sf.read(d.path, dtype="float32", always_2d=True)
    narrow = soxr.resample(audio.mean(axis=1), sr, 8000)
    pcm = (np.clip(narrow, -1, 1) * 32767).astype(np.int16)
    line = decode("mulaw", encode_mulaw(pcm), 1)[0]
    path = workdir / f"{d.name}_8k_mulaw.wav"
    sf.write(path, line, 8000, subtype="PCM_16")
    return Dialogue(f"{d.name}_phone", str(path), len(line) / 8000, d.turns)


class EventTail:
    """Final events collected by a thread (``_run``, until ``running`` is cleared), each with the Unix time it
    arrived; the base of the bench's bus listeners."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def finals(self, stream_id: str) -> list[tuple[float, dict]]:
        with self.lock:
            return [(t, e) for t, e in self.events if e["stream_id"] == stream_id]

    def close(self) -> None:
        self.running = False
        self.thread.join(5)


class BusListener(EventTail):
    """A ZeroMQ SUB on the server's bus in a thread: every final event with the Unix time it arrived."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        super().__init__()

    def _run(self) -> None:
        while self.running:
            if self.sock.poll(100):
                frames = self.sock.recv_multipart()
                arrived = time.time()
                event = json.loads(frames[-1])
                if event.get("type") == "emotion":
                    with self.lock:
                        self.events.append((arrived, event))

    def close(self) -> None:
        super().close()
        self.sock.close(0)
        self.ctx.term()


class Server:
    def __init__(self, workdir: Path, max_calls: int) -> None:
        self.port, zport = free_port(), free_port()
        self.zmq = f"tcp://127.0.0.1:{zport}"
        config = workdir / "serve.yaml"
        config.write_text(f"server: {{max_calls: {max_calls + 1}, idle_timeout_s: 60.0}}\n"
                          f"source: {{max_streams: 64}}\n")
        self.log = workdir / "serve.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "emostream.stream.cli", "serve", "--port", str(self.port), "--config",
                 str(config), "--zmq", self.zmq, "--no-stdout"],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, EMO_STREAM_TOKENS=TOKEN))
        deadline = time.monotonic() + 300
        while "serving" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"emo-bench: emo-stream serve did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/twilio?token={TOKEN}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def calls(server: Server, dialogues: list[Dialogue], ids: list[str], speed: float) -> dict[str, float]:
    """Streams one call per id (dialogue i % len) from one sender process, all starting at the same moment (as the
    in-process streams do: calls whose utterances end together share batches, staggered ones queue behind each
    other); returns each call's t0."""
    start_at = time.time() + START_AFTER_S + 0.1 * len(ids)  # the sender started and every call connected by then
    proc = subprocess.run(
        [sys.executable, "-m", "emostream.stream.tools.bench.twilio_sender", server.url,
         *[f"{dialogues[i % len(dialogues)].path}:{sid}" for i, sid in enumerate(ids)],
         "--speed", str(speed), "--start-at", str(start_at)],
        capture_output=True, text=True, timeout=120 + 3 * max(d.duration_s for d in dialogues))
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    t0 = {x["sid"]: x["t0"] for x in lines if "t0" in x}
    closed = {x["sid"]: x["closed"] for x in lines if "closed" in x}
    failed = [sid for sid in ids if closed.get(sid) != 1000]
    if proc.returncode or failed:
        raise SystemExit(f"emo-bench: call(s) {', '.join(failed) or '-'} failed: {proc.stdout[-500:]} "
                         f"{proc.stderr[-1500:]}")
    return t0


class ServerSide:
    """Live calls through one ``emo-stream serve`` for the whole comparison, started and warmed up (the first calls
    of every model, as in-process does) at its first run: every repetition then meets the same warm process, as a
    deployed server's calls would, rather than one that has just loaded its models."""

    def __init__(self, dialogues: list[Dialogue], workdir: Path, max_calls: int) -> None:
        self.dialogues, self.workdir, self.max_calls = dialogues, workdir, max_calls
        self.server: Server | None = None
        self.bus: BusListener | None = None

    def run(self, n: int, repetition: int) -> dict[str, Any]:
        """N calls at real time, scored as the in-process side scores its streams."""
        if self.server is None:
            self.server = Server(self.workdir, self.max_calls)
            self.bus = BusListener(self.server.zmq)
            time.sleep(0.5)  # the subscription reaches the server before any event is published
            calls(self.server, self.dialogues[:1], ["warm-up"], speed=0)
        server, bus = self.server, self.bus
        assert bus is not None
        ids = [f"srv{n}-r{repetition + 1}-{i + 1:02d}" for i in range(n)]
        t0 = calls(server, self.dialogues, ids, speed=1.0)
        live, e2e, pairs, turns, finals = [], [], [], 0, 0
        for i, sid in enumerate(ids):
            d = self.dialogues[i % len(self.dialogues)]
            got = bus.finals(sid)
            finals += len(got)
            by_id = {e["utterance_id"]: t for t, e in got}
            matched = match([e for _, e in got], d.turns)
            turns += len(d.turns)
            pairs += [(t["text"], e["transcript"] if e else "") for t, e in zip(d.turns, matched, strict=True)]
            live += [(by_id[e["utterance_id"]] - (t0[sid] + e["end_s"])) * 1000 for e in matched if e]
            e2e += [e["latency_ms"]["end_to_end"] for e in matched if e]
        row = {"streams": n, "turns": turns, "finals": finals, "matched": len(live),
               "all_finals": len(live) == turns == finals, "live_ms": {q: pct(live, q) for q in (50, 95, 99)},
               "final_ms": {q: pct(e2e, q) for q in (50, 95, 99)}, "wer": word_error_rate(pairs)}
        # The in-process rule less the source lag, which the sender process paces on its own clock.
        row["kept_up"] = row["all_finals"] and pct(live, 95) is not None and pct(live, 95) <= P95_LIMIT_MS
        return row

    def close(self) -> None:
        if self.bus:
            self.bus.close()
        if self.server:
            self.server.stop()


def inprocess_run(n: int, dialogues: list[Dialogue], workdir: Path) -> dict[str, Any]:
    """N streams at real time through the bench's own job, in a subprocess that loads and warms up its models."""
    job = {"kind": "stream", "config": "emo-stream", "streams": n, "realtime": True, "channel_names": [ROLE],
           "dialogues": [d.__dict__ for d in dialogues]}
    longest = max(d.duration_s for d in dialogues)
    s = summarise_streams(run_in_subprocess(job, workdir, timeout_s=120 + longest * (2 + n)))
    if "failed" in s:
        raise SystemExit(f"emo-bench: the in-process run of {n} stream(s) failed: {s['failed']}")
    return {k: s[k] for k in ("streams", "turns", "finals", "matched", "all_finals", "live_ms", "final_ms", "wer",
                              "kept_up")}


def compare(counts: list[int], dialogues: list[Dialogue], workdir: Path, repeats: int = 1) -> dict[str, Any]:
    """Both sides at every count, ``repeats`` times each in ``schedule``'s order; ``repetitions`` keeps every raw
    row, the rest is ``aggregate``'s summary of them."""
    phone = [telephone_copy(d, workdir) for d in dialogues]
    server = ServerSide(phone, workdir, max(counts))
    repetitions: dict[tuple[int, int], dict[str, Any]] = {}
    try:
        for n, r, side in schedule(counts, repeats):
            rep = repetitions.setdefault((n, r), {"streams": n, "repetition": r + 1, "order": []})
            rep["order"].append(side)
            rep[side] = inprocess_run(n, phone, workdir) if side == "in_process" else server.run(n, r)
    finally:
        server.close()
    summary = aggregate(list(repetitions.values()))
    return {"dialogues": [d.__dict__ for d in phone], "repeats": repeats, **summary,
            "repetitions": list(repetitions.values()), "markdown": table(summary)}
