"""MQTT reliability against a real mosquitto that goes away: reconnection, the spool, its limits, its persistence.

These tests use their own broker with persistence on, so that the subscriber's persistent session
(clean_session=False, QoS 1) survives the broker's restart: whatever the publisher delivers before the subscriber
is back is queued for it. Otherwise a publisher that reconnects first would publish into the void, and the test
could not tell a lost event from a badly timed subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import soundfile as sf

from emostream.stream.config import MqttConfig
from emostream.stream.events import EmotionEvent, Event, MetricsEvent, PartialEvent
from emostream.stream.publishers.mqtt import MqttPublisher
from tests.stream.cli_run import of_type, run_cli
from tests.support import dialogues as dlg
from tests.support.messaging import MosquittoBroker

EXAMPLE = dlg.EXAMPLE_JSON.with_suffix(".flac")
CLI = [sys.executable, "-m", "emostream.stream.cli"]


class PersistentBroker(MosquittoBroker):
    """mosquitto that saves sessions and queued messages on shutdown and restores them on start."""

    def _write_config(self) -> None:
        super()._write_config()
        with self.config_path.open("a") as f:
            f.write(f"persistence true\npersistence_location {self.workdir}/\n")
        self.config_path.write_text(self.config_path.read_text().replace("persistence false\n", ""))


class PersistentSubscriber:
    """A paho subscriber with a persistent session (clean_session=False, QoS 1) that reconnects by itself."""

    def __init__(self, port: int, topic: str = "emostream/#") -> None:
        self.topic = topic
        self._payloads: list[bytes] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"durable-{uuid.uuid4().hex[:8]}",
                                   clean_session=False, protocol=paho.MQTTv311)
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port, keepalive=10)
        self._client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self._payloads.append(bytes(msg.payload))
            self._cond.notify_all()

    def wait_for(self, wanted: Callable[[list[bytes]], bool], timeout_s: float) -> list[bytes]:
        with self._cond:
            self._cond.wait_for(lambda: wanted(self._payloads), timeout=timeout_s)
            return list(self._payloads)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    b = PersistentBroker(dlg.require_binary("mosquitto"), tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker: PersistentBroker) -> Iterator[PersistentSubscriber]:
    s = PersistentSubscriber(broker.port)
    yield s
    s.close()


def dedup_key(e: dict) -> tuple:
    """What identifies an event across at-least-once redelivery (metrics have no utterance: their time does)."""
    return e["type"], e["stream_id"], e.get("utterance_id"), e.get("revision"), \
        e["emitted_at"] if e["type"] == "metrics" else None


def keys(payloads: list[bytes] | list[str]) -> set[tuple]:
    return {dedup_key(json.loads(p)) for p in payloads}


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def write_config(path: Path, **mqtt: object) -> Path:
    lines = ["publish:", "  mqtt:"] + [f"    {k}: {json.dumps(v)}" for k, v in mqtt.items()]
    path.write_text("\n".join(["metrics:", "  interval_s: 2.0", *lines]) + "\n")
    return path


def test_broker_outage_mid_replay_loses_no_event(broker, subscriber, tmp_path):
    """The broker dies after the first final and comes back 30 s later (after the replay has ended: the publisher
    keeps its spool and delivers at exit); the subscriber ends with every event."""
    jsonl = tmp_path / "events.jsonl"
    config = write_config(tmp_path / "c.yaml", backoff_s=0.2, max_backoff_s=1.0)
    proc = subprocess.Popen([*CLI, "--replay", str(EXAMPLE), "--realtime", "--stream-id", "outage", "--no-stdout",
                             "--jsonl", str(jsonl), "--config", str(config), "--mqtt", f"127.0.0.1:{broker.port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: of_type(read_events(jsonl), "emotion"), 120, "the first final event")
        broker.stop()
        down_at = time.time()
        time.sleep(30)
        up_at = time.time()
        broker.start()
        _, stderr = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "reconnected" in stderr
    lines = [line for line in jsonl.read_text().splitlines() if line]
    events = [json.loads(line) for line in lines]
    during = [e for e in events if down_at < e["emitted_at"] < up_at]
    assert of_type(during, "emotion"), "the outage should have covered at least one final event"
    received = subscriber.wait_for(lambda got: keys(got) >= keys(lines), timeout_s=20)
    # Every published event arrived, each exactly as published; duplicates only repeat one of them.
    assert keys(received) == keys(lines)
    assert len(keys(lines)) == len(lines)
    assert set(received) == {line.encode() for line in lines}
    finals = [json.loads(p) for p in received if json.loads(p)["type"] == "emotion"]
    assert len({e["utterance_id"] for e in finals}) == len(of_type(events, "emotion")) == 6


def make_event(kind: str, n: int) -> Event:
    common = {"stream_id": "unit", "emitted_at": float(n)}
    if kind == "metrics":
        return MetricsEvent(**common, window_s=5.0, audio_s=1.0, wall_s=1.0, real_time_factor=1.0, utterances=n,
                            latency_ms={}, queue_depths={}, dropped_partials=0, input_overruns=0)
    utt = {"utterance_id": f"unit-{n:05d}", "seq": n, "channel": 0, "speaker": "ch0", "start_s": 0.0, "end_s": 1.0,
           "latency_ms": {}}
    if kind == "partial":
        return PartialEvent(**common, **utt, revision=1, committed="", tentative="hello")
    scores = {"neutral": 1.0}
    return EmotionEvent(**common, **utt, transcript="hello", label="neutral", confidence=1.0, scores=scores,
                        modality_scores={"audio": scores, "text": None}, valence=0.0, arousal=0.0, model_id="m",
                        split=False, asr={})


def test_full_spool_drops_partials_and_metrics_first_and_waits_on_finals(broker, subscriber, caplog):
    cfg = MqttConfig(enabled=True, port=broker.port, spool_size=4, backoff_s=0.2, max_backoff_s=0.5,
                     drain_timeout_s=10)

    async def scenario() -> MqttPublisher:
        pub = MqttPublisher(cfg, "spool-test")
        await pub.start()
        broker.stop()
        await asyncio.sleep(0.5)  # the publisher notices, so no event is in flight (in flight is never dropped)
        for kind, n in [("partial", 1), ("metrics", 2), ("emotion", 3), ("emotion", 4),  # spool now full
                        ("partial", 5),  # drops partial 1
                        ("emotion", 6),  # drops metrics 2
                        ("emotion", 7),  # drops partial 5
                        ("partial", 8)]:  # nothing droppable left: partial 8 itself is dropped
            await asyncio.wait_for(pub.publish(make_event(kind, n)), 2)
        assert pub.dropped == 4
        blocked = asyncio.create_task(pub.publish(make_event("emotion", 9)))
        await asyncio.sleep(1.0)
        assert not blocked.done(), "a final must wait for room, never be dropped"
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(blocked, 15)
        await pub.close()
        return pub

    pub = asyncio.run(scenario())
    assert pub.dropped == 4
    assert sum("spool full" in r.getMessage() for r in caplog.records) == 1, "the warning is rate-limited"
    received = subscriber.wait_for(lambda got: len(keys(got)) >= 5, timeout_s=10)
    got = [json.loads(p) for p in received]
    assert sorted({(e["type"], e["seq"]) for e in got}) == [("emotion", n) for n in (3, 4, 6, 7, 9)]
    assert [e["seq"] for e in got if e["seq"] != 9][:4] == [3, 4, 6, 7], "sent in order of publication"


def test_spool_file_survives_sigkill_and_is_sent_first_next_time(broker, subscriber, tmp_path):
    spool = tmp_path / "spool.sqlite"
    config = write_config(tmp_path / "c.yaml", backoff_s=0.2, max_backoff_s=1.0, spool_path=str(spool))
    first = tmp_path / "first.jsonl"
    proc = subprocess.Popen([*CLI, "--replay", str(EXAMPLE), "--realtime", "--stream-id", "first", "--no-stdout",
                             "--jsonl", str(first), "--config", str(config), "--mqtt", f"127.0.0.1:{broker.port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: of_type(read_events(first), "emotion"), 120, "the first final event")
        broker.stop()
        seen = len(read_events(first))
        wait_until(lambda: len(of_type(read_events(first), "emotion")) >= 2 and len(read_events(first)) >= seen + 2,
                   60, "events published while the broker is down")
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    with contextlib.closing(sqlite3.connect(spool)) as db:
        (left,) = db.execute("SELECT COUNT(*) FROM spool").fetchone()
    assert left >= 2, "the killed run left its undelivered events in the spool file"
    broker.start()

    audio, rate = sf.read(EXAMPLE)
    short = tmp_path / "short.flac"
    sf.write(short, audio[: int(6 * rate)], rate)
    r = run_cli("--replay", str(short), "--stream-id", "second", "--config", str(config),
                "--mqtt", f"127.0.0.1:{broker.port}", timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"{left} events left undelivered by an earlier run" in r.stderr
    lines = [line for line in first.read_text().splitlines() if line.endswith("}")]
    wanted = keys(lines) | keys(r.stdout.splitlines())
    received = subscriber.wait_for(lambda got: keys(got) >= wanted, timeout_s=20)
    assert keys(received) >= wanted
    with contextlib.closing(sqlite3.connect(spool)) as db:
        assert db.execute("SELECT COUNT(*) FROM spool").fetchone() == (0,)
