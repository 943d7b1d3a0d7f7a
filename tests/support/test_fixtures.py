"""The test infrastructure works against the real things: mosquitto, ZeroMQ across processes, dialogue audio."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq

from tests.support import dialogues as dlg
from tests.support.messaging import free_port

EXAMPLES = dlg.REPO_ROOT / "examples"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pub(broker, topic: str, payload: str) -> None:
    mosquitto_pub = dlg.require_binary("mosquitto_pub")
    cmd = [mosquitto_pub, "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", topic, "-m", payload]
    subprocess.run(cmd, check=True, timeout=10)


# --------------------------------------------------------------------------------------------------- ports, MQTT


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_mosquitto_config_and_connection(mosquitto) -> None:
    conf = mosquitto.config_path.read_text()
    assert f"listener {mosquitto.port} 127.0.0.1" in conf
    assert "allow_anonymous true" in conf
    assert "persistence false" in conf
    assert mosquitto.running
    assert _port_open(mosquitto.host, mosquitto.port)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_mqtt_collector_receives_mosquitto_pub(mosquitto, mqtt_collector) -> None:
    col = mqtt_collector("fixtures/mqtt/#")
    other = mqtt_collector("elsewhere/#")
    for i in range(3):
        _pub(mosquitto, f"fixtures/mqtt/s{i}", json.dumps({"i": i, "emotion": "joy"}))
    _pub(mosquitto, "unrelated/topic", "x")
    got = col.wait_for(3, timeout_s=10)
    assert [m.topic for m in got] == ["fixtures/mqtt/s0", "fixtures/mqtt/s1", "fixtures/mqtt/s2"]
    assert [m.json() for m in got] == [{"i": i, "emotion": "joy"} for i in range(3)]
    assert all(m.qos == 1 for m in got)
    time.sleep(0.2)
    assert len(col.messages()) == 3  # the unrelated topic did not match the filter
    assert other.messages() == []


def test_mosquitto_stop_and_restart_on_same_port(mosquitto, mqtt_collector) -> None:
    col = mqtt_collector("fixtures/restart")
    port = mosquitto.port
    _pub(mosquitto, "fixtures/restart", "before")
    assert [m.payload for m in col.wait_for(1)] == [b"before"]
    mosquitto.stop()
    try:
        assert not mosquitto.running
        assert not _port_open("127.0.0.1", port)
    finally:
        mosquitto.start()
    assert mosquitto.port == port and mosquitto.running
    assert col.wait_subscribed(15), "collector did not reconnect and resubscribe after the restart"
    _pub(mosquitto, "fixtures/restart", "after")
    assert [m.payload for m in col.wait_for(2)] == [b"before", b"after"]


# --------------------------------------------------------------------------------------------------- ZeroMQ


def test_zmq_collector_in_another_process(zmq_collector) -> None:
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 1000)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub.bind(endpoint)
    try:
        col = zmq_collector(endpoint, prefix="emotion/")
        assert col.pid != os.getpid()
        col.sync(pub)
        sent = [{"seq": i, "emotion": e} for i, e in enumerate(["anger", "neutral", "joy", "sadness", "fear"])]
        for ev in sent:
            pub.send_multipart([b"emotion/call1", json.dumps(ev).encode()])
        pub.send_multipart([b"other/call1", b"{}"])  # not subscribed
        assert len(col.wait_for(len(sent), timeout_s=10)) == len(sent)
        got = col.stop()
    finally:
        pub.close()
    assert [m.topic for m in got] == ["emotion/call1"] * len(sent)
    assert [m.json() for m in got] == sent
    assert all(len(m.frames) == 2 for m in got)
    assert col.end_info["reason"] == "stop"


def test_zmq_collector_bind_mode_and_timeout(zmq_collector) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    col = zmq_collector(endpoint, prefix="", bind=True, timeout_s=3.0)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.connect(endpoint)
    try:
        col.sync(pub)
        pub.send_multipart([b"t", b'{"ok": true}'])
        assert [m.json() for m in col.wait_for(1)] == [{"ok": True}]
    finally:
        pub.close()
    col.wait_for(10**6, timeout_s=10)  # returns when the process ends by itself
    assert col.end_info["reason"] == "timeout"


# --------------------------------------------------------------------------------------------------- dialogues


def test_trim_silence_exact_on_known_signal() -> None:
    sr = 16000
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(8000) / sr).astype(np.float32)
    x = np.concatenate([np.zeros(3200), 1e-4 * np.ones(1600), tone, np.zeros(4800)]).astype(np.float32)
    y = dlg.trim_silence(x, sr)
    assert len(y) == len(tone)  # the -80 dB hum is below -35 dB and cut with the zeros
    np.testing.assert_array_equal(y, tone)


def test_missing_data_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(dlg.DATA_ENV, str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match="RAVDESS not found"):
        dlg.ravdess_clip(24, 3, 1)


def test_ravdess_clip_labels_and_trim() -> None:
    clip = dlg.ravdess_clip(24, 2, 2)
    raw, sr = sf.read(dlg.ravdess_root() / "Actor_24" / "03-01-02-01-02-01-24.flac", dtype="float32")
    assert (clip.emotion, clip.text, clip.sample_rate) == ("neutral", "Dogs are sitting by the door", 16000)
    assert sr == 16000 and 0.8 < clip.duration_s < len(raw) / sr
    assert {dlg.RAVDESS_EMOTIONS[c] for c in range(1, 9)} == set(dlg.EMOTIONS)


def test_build_dialogue_validates(tmp_path: Path) -> None:
    c = dlg.Clip(np.full(1600, 0.1, dtype=np.float32), 16000, "x", "neutral")
    with pytest.raises(ValueError, match=r">= 0\.8"):
        dlg.build_dialogue(tmp_path / "a.flac", [("A", c), ("B", c)], pause_s=0.5)
    with pytest.raises(ValueError, match="two speakers"):
        dlg.build_dialogue(tmp_path / "b.flac", [("A", c), ("B", c), ("C", c)], stereo=True)


def _frame_rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _check_dialogue(d: dlg.Dialogue, stereo: bool) -> None:
    info = sf.info(d.path)
    assert (info.samplerate, info.channels) == (d.sample_rate, d.channels) == (16000, 2 if stereo else 1)
    assert info.frames == round(d.duration_s * d.sample_rate)
    x, sr = sf.read(d.path, dtype="float32", always_2d=True)
    assert 6 <= len(d.turns) <= 8
    assert d.turns[0].start_s == pytest.approx(0.5)
    assert d.turns[-1].end_s < d.duration_s
    for prev, nxt in zip(d.turns, d.turns[1:], strict=False):
        assert nxt.start_s - prev.end_s >= dlg.MIN_PAUSE_S - 1e-9
        assert prev.speaker != nxt.speaker  # speakers alternate
    hop = sr // 100
    voiced = np.zeros(len(x), dtype=bool)
    for t in d.turns:
        a, b = round(t.start_s * sr), round(t.end_s * sr)
        assert (a, b) == (t.start_s * sr, t.end_s * sr)  # sample-exact
        seg = x[a:b, t.channel]
        peak = max(_frame_rms(seg[i : i + hop]) for i in range(0, len(seg) - hop + 1, hop))
        # The trim criterion holds at both edges of every turn in the written file: voiced first and last frames.
        assert _frame_rms(seg[:hop]) >= 0.9 * peak * 10 ** (dlg.TRIM_THRESHOLD_DB / 20)
        assert _frame_rms(seg[-hop:]) >= 0.9 * peak * 10 ** (dlg.TRIM_THRESHOLD_DB / 20)
        assert t.channel == ((0 if t.speaker == d.turns[0].speaker else 1) if stereo else 0)
        if stereo:
            assert not np.any(x[a:b, 1 - t.channel]), "the other channel must be silent"
        assert t.emotion in dlg.EMOTIONS and t.text
        voiced[a:b] = True
    assert not np.any(x[~voiced]), "everything outside the turns must be digital silence"


@pytest.mark.parametrize("stereo", [False, True], ids=["mono", "stereo"])
def test_ravdess_dialogue_ground_truth(tmp_path: Path, stereo: bool) -> None:
    d = dlg.ravdess_dialogue(tmp_path, stereo=stereo, suffix=".wav" if stereo else ".flac")
    _check_dialogue(d, stereo)
    assert {t.emotion for t in d.turns} == set(dlg.EMOTIONS)
    assert {t.source[-2:] for t in d.turns} == {"23", "24"}  # held-out actors only
    assert {t.text for t in d.turns} == set(dlg.RAVDESS_STATEMENTS.values())


@pytest.mark.parametrize("stereo", [False, True], ids=["mono", "stereo"])
def test_mixed_dialogue_ground_truth(tmp_path: Path, stereo: bool) -> None:
    d = dlg.mixed_dialogue(tmp_path, stereo=stereo)
    _check_dialogue(d, stereo)
    kinds = {t.source.split(":")[0] for t in d.turns}
    assert kinds == {"ravdess", "espeak-ng"}
    assert len({t.text for t in d.turns}) >= 5
    assert "I can't believe you did that, this is terrible" in {t.text for t in d.turns}


def test_session_dialogue_fixtures(ravdess_dialogue, mixed_dialogue) -> None:
    for d in (ravdess_dialogue, mixed_dialogue):
        assert d.path.exists() and d.path.suffix == ".flac"
        assert sf.info(d.path).duration == pytest.approx(d.duration_s)


# --------------------------------------------------------------------------------------------------- bundled example


def test_example_matches_its_ground_truth(example_dialogue) -> None:
    d = example_dialogue
    assert d.path.stat().st_size < 1_000_000
    _check_dialogue(d, stereo=False)
    assert 20.0 <= d.duration_s <= 30.0
    assert [t.speaker for t in d.turns] == ["customer", "agent"] * 3
    assert [t.emotion for t in d.turns] == ["anger", "neutral", "anger", "neutral", "joy", "joy"]


def test_example_build_is_reproducible(tmp_path: Path) -> None:
    dlg.require_binary("espeak-ng")
    dlg.require_binary("sox")
    subprocess.run([sys.executable, str(EXAMPLES / "build_example.py"), "--out-dir", str(tmp_path)], check=True)
    fresh = json.loads((tmp_path / "call_center.json").read_text())
    bundled = json.loads((EXAMPLES / "call_center.json").read_text())
    assert fresh["turns"] == bundled["turns"]
    a, _ = sf.read(tmp_path / "call_center.flac", dtype="int16")
    b, _ = sf.read(EXAMPLES / "call_center.flac", dtype="int16")
    np.testing.assert_array_equal(a, b)
