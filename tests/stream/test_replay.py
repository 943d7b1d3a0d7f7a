"""End to end: real dialogues replayed through the real CLI, events received over a real broker and socket."""

from __future__ import annotations

import json

import jsonschema
import pytest

from emostream.stream.events import load_schema
from tests.stream.cli_run import match, run_cli, word_error_rate
from tests.support.messaging import free_port

BOUNDARY_TOLERANCE_S = 0.3


def check_against_truth(events: list[dict], dialogue, max_wer: float) -> None:
    turns = dialogue.turns
    assert abs(len(events) - len(turns)) <= 1, (len(events), len(turns))
    pairs = match(events, turns)
    for turn, event in pairs:
        assert event is not None, f"no event overlaps turn {turn}"
        assert abs(event["start_s"] - turn.start_s) <= BOUNDARY_TOLERANCE_S, (turn, event["start_s"])
        assert abs(event["end_s"] - turn.end_s) <= BOUNDARY_TOLERANCE_S, (turn, event["end_s"])
        assert event["speaker"] == f"ch{turn.channel}" or dialogue.channels == 1
    wer = word_error_rate(pairs)
    assert wer <= max_wer, f"word error rate {wer:.3f} above {max_wer}"


def test_replay_publishes_to_stdout_jsonl_zmq_and_mqtt(ravdess_dialogue, mqtt_collector, zmq_collector, mosquitto,
                                                       tmp_path):
    validator = jsonschema.Draft202012Validator(load_schema("emotion"))
    mqtt = mqtt_collector("emostream/#")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    zmq = zmq_collector(endpoint, "emostream/")
    jsonl = tmp_path / "events.jsonl"
    r = run_cli("--replay", str(ravdess_dialogue.path), "--stream-id", "call-7", "--jsonl", str(jsonl),
                "--zmq", endpoint, "--mqtt", f"{mosquitto.host}:{mosquitto.port}")
    assert r.returncode == 0, r.stderr
    events = r.events
    for e in events:
        validator.validate(e)
        assert e["stream_id"] == "call-7"
        assert e["latency_ms"]["end_to_end"] >= e["latency_ms"]["asr"] > 0
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["utterance_id"] for e in events}) == len(events)
    check_against_truth(events, ravdess_dialogue, max_wer=0.15)

    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == events
    received = mqtt.wait_for(len(events), timeout_s=20)
    assert sorted((m.topic, m.json()["utterance_id"]) for m in received) == sorted(
        ("emostream/call-7/emotion", e["utterance_id"]) for e in events)
    assert all(m.qos == 1 for m in received)
    zmsgs = zmq.wait_for(len(events), timeout_s=20)
    assert [(m.topic, m.json()) for m in zmsgs] == [("emostream/call-7/emotion", e) for e in events]


def test_varied_transcripts_within_word_error_bound(mixed_dialogue):
    r = run_cli("--replay", str(mixed_dialogue.path))
    assert r.returncode == 0, r.stderr
    check_against_truth(r.events, mixed_dialogue, max_wer=0.25)


def test_stereo_file_gives_one_speaker_per_channel(tmp_path):
    from tests.support.dialogues import ravdess_dialogue

    dialogue = ravdess_dialogue(tmp_path, stereo=True, suffix=".wav")
    r = run_cli("--replay", str(dialogue.path), "--channels", "agent,customer")
    assert r.returncode == 0, r.stderr
    events = r.events
    check_against_truth(events, dialogue, max_wer=0.15)
    names = ("agent", "customer")
    for turn, event in match(events, dialogue.turns):
        assert event["channel"] == turn.channel
        assert event["speaker"] == names[turn.channel]


def test_example_runs_with_the_network_switched_off(example_dialogue):
    """Every model loads from installed packages and the repo: no network namespace, no hub."""
    r = run_cli("--replay", str(example_dialogue.path), "--realtime", prefix=("unshare", "-n"))
    if r.returncode != 0 and "unshare" in r.stderr and "Operation not permitted" in r.stderr:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    assert r.returncode == 0, r.stderr
    check_against_truth(r.events, example_dialogue, max_wer=0.25)
    # Paced like a live source, the latency is no longer dominated by the queue of a fast replay.
    assert all(e["latency_ms"]["endpoint"] >= 250 for e in r.events)
