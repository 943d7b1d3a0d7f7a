"""The live runtime: several streams in one process, a broken stream alone failing, SIGTERM flushing, metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

from emostream.stream.events import validator
from tests.stream.cli_run import of_type, run_cli
from tests.stream.test_replay import check_against_truth
from tests.support.messaging import free_port


def test_streams_run_concurrently_and_a_broken_one_fails_alone(ravdess_dialogue, example_dialogue, tmp_path):
    cut = tmp_path / "cut.flac"
    whole = example_dialogue.path.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    r = run_cli("--replay", str(ravdess_dialogue.path), "--replay", str(cut), "--replay", str(example_dialogue.path),
                "--stream-id", "a", "--stream-id", "broken", "--stream-id", "b")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("emo-stream: error:")]
    assert len(errors) == 1 and "cut.flac" in errors[0] and "truncated" in errors[0]
    by_stream = {sid: [e for e in r.events if e["stream_id"] == sid] for sid in ("a", "broken", "b")}
    check_against_truth(by_stream["a"], ravdess_dialogue, max_wer=0.15)
    check_against_truth(by_stream["b"], example_dialogue, max_wer=0.25)
    assert of_type(by_stream["broken"], "emotion"), "what the broken file held before the damage is published"
    # The streams really interleave: events of both healthy streams alternate in the output.
    order = [e["stream_id"] for e in of_type(r.events, "emotion") if e["stream_id"] != "broken"]
    assert order != sorted(order)


def test_sigterm_finishes_the_utterance_in_flight_and_exits_0(example_dialogue):
    port = free_port()
    cmd = [sys.executable, "-m", "emostream.stream.cli", "--replay", str(example_dialogue.path), "--realtime",
           "--prometheus-port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # wait for the first fused event, then for speech of the next utterance
        lines.append(line)
        if json.loads(line)["type"] == "emotion":
            break
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        scraped = resp.read().decode()
    assert 'emostream_stage_latency_seconds_count{stage="asr",stream="call_center"} 1.0' in scraped
    assert 'emostream_events_total{stream="call_center",type="emotion"} 1.0' in scraped
    time.sleep(2.5)  # into the second utterance (6.2 s .. 10.1 s of the file)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - sent < 20
    events = [json.loads(x) for x in lines + out.splitlines()]
    for e in events:
        validator(e["type"]).validate(e)
    finals = of_type(events, "emotion")
    assert len(finals) == 2, "the utterance in flight at SIGTERM is finalised and published"
    assert finals[1]["end_s"] < example_dialogue.turns[1].end_s, "it ends where the input stopped"
    assert of_type(events, "metrics")[-1]["utterances"] == 2
    assert "call_center: 2 utterances" in err


def test_more_streams_than_the_limit_are_refused_at_start(example_dialogue, tmp_path):
    cfg = tmp_path / "two.yaml"
    cfg.write_text("source:\n  max_streams: 2\n")
    path = str(example_dialogue.path)
    r = run_cli("--config", str(cfg), "--replay", path, "--replay", path, "--replay", path,
                "--stream-id", "a", "--stream-id", "b", "--stream-id", "c")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "3 streams requested but source.max_streams is 2" in r.stderr
    assert r.stdout == ""
