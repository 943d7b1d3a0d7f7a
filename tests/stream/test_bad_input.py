"""A user's mistake gets one line that names the problem and what to do, and a non-zero exit; never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.stream.cli_run import run_cli
from tests.support.messaging import free_port


def assert_one_line_error(r, *fragments: str, code: int = 2) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("emo-stream: error:")]
    assert len(errors) == 1, r.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])


def test_missing_file(tmp_path):
    r = run_cli("--replay", str(tmp_path / "nope.flac"))
    assert_one_line_error(r, "nope.flac", "no such file")


def test_directory_instead_of_file(tmp_path):
    assert_one_line_error(run_cli("--replay", str(tmp_path)), "is not a file")


@pytest.mark.parametrize("name, content", [
    ("corrupt.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8),
    ("notes.mp3", b"this is a text file, not audio\n" * 50),
    ("random.flac", np.random.default_rng(0).bytes(20000)),
])
def test_undecodable_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert_one_line_error(run_cli("--replay", str(path)), name, "cannot decode audio", "ffmpeg")


def test_truncated_flac(tmp_path, example_dialogue):
    whole = example_dialogue.path.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole[: len(whole) // 2])
    r = run_cli("--replay", str(cut))
    assert_one_line_error(r, "cut.flac", "truncated")
    assert r.events, "the decodable first half is still processed and published"


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.int16), 16000)
    assert_one_line_error(run_cli("--replay", str(path)), "empty.wav", "no audio samples")


def test_silence_only(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 5, dtype=np.int16), 16000)
    r = run_cli("--replay", str(path))
    assert_one_line_error(r, "silence.wav", "no speech found", "digital silence")
    assert [e["type"] for e in r.events] == ["metrics"], "only the stream's closing metrics"


def test_bad_config_key_is_named(tmp_path, example_dialogue):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("publish:\n  mqtt:\n    prot: 1883\n")
    assert_one_line_error(run_cli("--replay", str(example_dialogue.path), "--config", str(cfg)),
                          "bad.yaml", "publish.mqtt.prot")


def test_unreachable_broker_retries_then_fails(tmp_path, example_dialogue):
    cfg = tmp_path / "fast-retry.yaml"
    cfg.write_text("publish:\n  mqtt:\n    connect_attempts: 3\n    backoff_s: 0.1\n")
    port = free_port()
    r = run_cli("--replay", str(example_dialogue.path), "--config", str(cfg), "--mqtt", f"127.0.0.1:{port}")
    assert_one_line_error(r, f"127.0.0.1:{port}", "after 3 attempts", code=3)
    assert r.stderr.count("retrying in") == 2, r.stderr
    assert r.stdout == "", "nothing is processed when the bus is unreachable at start"
