"""A new caller's first words, through the real CLI and the shipped bundle.

The stream standardises a speaker's voice by their running statistics, which for a first utterance are mostly the
training corpus's (models/speaker_norm.py). A bundle trained only at the steady state reads that offset as
emotion: the unshipped v5 called 21 of 30 calm, happy, sad... first utterances of held-out actors angry. Here every
clip of the held-out RAVDESS test actors (never used for training or model choice) is its own stream, so each is
its speaker's first utterance, and the voice alone (the audio branch's scores; every clip says one of two neutral
sentences) must neither raise false anger alarms nor miss the angry clips.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.stream.cli_run import of_type, run_cli
from tests.support.dialogues import ravdess_root

TEST_ACTORS = (21, 22, 23, 24)  # the default bundle's held-out RAVDESS test actors (its data card)
# RAVDESS emotion codes of the clips replayed (neutral, happy, sad, angry) and our label for each.
EMOTIONS = {"01": "neutral", "03": "joy", "04": "sadness", "05": "anger"}


def test_first_utterances_of_new_speakers_are_not_called_angry(tmp_path: Path) -> None:
    root = ravdess_root()
    clips = {f"{e}-{a}": root / f"Actor_{a:02d}" / f"03-01-{e}-{'01' if e == '01' else '02'}-01-01-{a:02d}.flac"
             for a in TEST_ACTORS for e in EMOTIONS}
    args = [x for sid, path in clips.items() for x in ("--replay", str(path), "--stream-id", sid)]
    r = run_cli(*args, "--no-partials", "--jsonl", str(tmp_path / "events.jsonl"), "--no-stdout")
    assert r.returncode == 0, r.stderr
    events = of_type([json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()], "emotion")
    voice = {}
    for e in events:  # a clip cut in two keeps its first utterance: the one a new speaker is heard by
        voice.setdefault(e["stream_id"], e["modality_scores"]["audio"])
    assert set(voice) == set(clips), "every clip gives at least one emotion event"
    called = {sid: max(scores, key=scores.get) for sid, scores in voice.items()}
    calm = [sid for sid in called if EMOTIONS[sid[:2]] != "anger"]
    false_alarms = [sid for sid in calm if called[sid] == "anger"]
    angry_found = [sid for sid in called if EMOTIONS[sid[:2]] == "anger" and called[sid] == "anger"]
    assert len(false_alarms) <= 2, f"calm first utterances called angry: {false_alarms} ({called})"
    assert len(angry_found) >= 2, f"angry first utterances missed: {called}"
    right = sum(called[sid] == EMOTIONS[sid[:2]] for sid in called)
    assert right >= len(called) / 2, f"only {right} of {len(called)} first utterances right: {called}"
