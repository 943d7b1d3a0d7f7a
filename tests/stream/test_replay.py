"""End to end: real dialogues replayed through the real CLI, events received over a real broker and socket."""

from __future__ import annotations

import itertools
import json

import pytest

from emostream.stream.events import EVENT_TYPES, validator
from tests.stream.cli_run import match, of_type, run_cli, word_error_rate
from tests.support.messaging import free_port

BOUNDARY_TOLERANCE_S = 0.3


def check_against_truth(events: list[dict], dialogue, max_wer: float) -> None:
    events = of_type(events, "emotion")
    turns = dialogue.turns
    assert abs(len(events) - len(turns)) <= 1, (len(events), len(turns))
    pairs = match(events, turns)
    for turn, event in pairs:
        assert event is not None, f"no event overlaps turn {turn}"
        assert abs(event["start_s"] - turn.start_s) <= BOUNDARY_TOLERANCE_S, (turn, event["start_s"])
        assert abs(event["end_s"] - turn.end_s) <= BOUNDARY_TOLERANCE_S, (turn, event["end_s"])
        assert event["channel"] == turn.channel
    wer = word_error_rate(pairs)
    assert wer <= max_wer, f"word error rate {wer:.3f} above {max_wer}"


def test_replay_publishes_to_stdout_jsonl_zmq_and_mqtt(ravdess_dialogue, mqtt_collector, zmq_collector, mosquitto,
                                                       tmp_path):
    validators = {t: validator(t) for t in EVENT_TYPES}
    mqtt = mqtt_collector("emostream/#")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    zmq = zmq_collector(endpoint, "emostream/")
    jsonl = tmp_path / "events.jsonl"
    r = run_cli("--replay", str(ravdess_dialogue.path), "--stream-id", "call-7", "--jsonl", str(jsonl),
                "--zmq", endpoint, "--mqtt", f"{mosquitto.host}:{mosquitto.port}")
    assert r.returncode == 0, r.stderr
    events = r.events
    for e in events:
        validators[e["type"]].validate(e)
        assert e["stream_id"] == "call-7"
    finals = of_type(events, "emotion")
    for e in finals:
        assert e["latency_ms"]["end_to_end"] >= e["latency_ms"]["asr"] > 0
    assert [e["seq"] for e in finals] == list(range(1, len(finals) + 1))
    assert len({e["utterance_id"] for e in finals}) == len(finals)
    # Each utterance: its audio-only estimate comes before its fused event.
    estimates = of_type(events, "emotion_estimate")
    assert [e["utterance_id"] for e in estimates] == [e["utterance_id"] for e in finals]
    for est in estimates:
        assert events.index(est) < next(i for i, e in enumerate(events)
                                        if e["type"] == "emotion" and e["utterance_id"] == est["utterance_id"])
        assert est["latency_ms"]["end_to_end"] < next(
            e for e in finals if e["utterance_id"] == est["utterance_id"])["latency_ms"]["end_to_end"]
    assert of_type(events, "metrics")[-1]["utterances"] == len(finals)
    assert not of_type(events, "partial")  # a fast replay is not live: no partial transcripts
    check_against_truth(events, ravdess_dialogue, max_wer=0.15)
    # A mono dialogue: speaker turns come from the voice encoder; labels match the truth up to renaming.
    naming = {(t.speaker, e["speaker"]) for t, e in match(finals, ravdess_dialogue.turns)}
    assert len(naming) == len({t.speaker for t in ravdess_dialogue.turns}) == len({e["speaker"] for e in finals})

    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == events
    received = mqtt.wait_for(len(events), timeout_s=20)
    assert sorted((m.topic, m.payload.decode()) for m in received) == sorted(
        (f"emostream/call-7/{e['type']}", json.dumps(e, ensure_ascii=False, separators=(",", ":"))) for e in events)
    assert all(m.qos == 1 for m in received)
    zmsgs = zmq.wait_for(len(events), timeout_s=20)
    assert [(m.topic, m.json()) for m in zmsgs] == [(f"emostream/call-7/{e['type']}", e) for e in events]


def test_varied_transcripts_within_word_error_bound(mixed_dialogue):
    r = run_cli("--replay", str(mixed_dialogue.path))
    assert r.returncode == 0, r.stderr
    check_against_truth(r.events, mixed_dialogue, max_wer=0.25)


def test_stereo_file_gives_one_speaker_per_channel(tmp_path):
    from tests.support.dialogues import ravdess_dialogue

    dialogue = ravdess_dialogue(tmp_path, stereo=True, suffix=".wav")
    r = run_cli("--replay", str(dialogue.path), "--channels", "agent,customer")
    assert r.returncode == 0, r.stderr
    check_against_truth(r.events, dialogue, max_wer=0.15)
    names = ("agent", "customer")
    for turn, event in match(of_type(r.events, "emotion"), dialogue.turns):
        assert event["channel"] == turn.channel
        assert event["speaker"] == names[turn.channel]


def test_example_runs_with_the_network_switched_off(example_dialogue):
    """Every model loads from installed packages and the repo: no network namespace, no hub."""
    r = run_cli("--replay", str(example_dialogue.path), "--realtime", prefix=("unshare", "-n"))
    if r.returncode != 0 and "unshare" in r.stderr and "Operation not permitted" in r.stderr:
        pytest.skip("unshare -n is not permitted here (needs root or user namespaces)")
    assert r.returncode == 0, r.stderr
    check_against_truth(r.events, example_dialogue, max_wer=0.25)
    # Paced like a live source, the endpoint waits for the VAD's hangover.
    assert all(e["latency_ms"]["endpoint"] >= 250 for e in of_type(r.events, "emotion"))
    check_partials(r.events)


def check_partials(events: list[dict]) -> None:
    """Partials come while an utterance is spoken: revisions count up, committed text only grows, and the
    fused event for the utterance comes after all of them."""
    partials = of_type(events, "partial")
    assert partials, "a live-paced replay publishes partial transcripts"
    finals = {e["utterance_id"]: i for i, e in enumerate(events) if e["type"] == "emotion"}
    by_utt: dict[str, list[dict]] = {}
    for p in partials:
        by_utt.setdefault(p["utterance_id"], []).append(p)
    for uid, ps in by_utt.items():
        assert [p["revision"] for p in ps] == sorted(p["revision"] for p in ps)
        for a, b in itertools.pairwise(ps):
            assert b["committed"].startswith(a["committed"])
        assert uid in finals and all(events.index(p) < finals[uid] for p in ps)
