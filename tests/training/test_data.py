"""Corpus loaders, text cleaning and speaker-independent splits, on fixtures in the real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emostream.models.interface import ModelDims
from emostream.training.batching import dialogue_inputs
from emostream.training.config import Splits
from emostream.training.data.meld import clean_text, load_meld
from emostream.training.data.ravdess import actor_of, load_ravdess, parse_name
from emostream.training.splits import split_ravdess, subsample
from tests import REPO_ROOT


def test_meld_loader_orders_cleans_and_labels(tmp_path: Path, meld_csv) -> None:
    meld_csv(tmp_path, "train", [
        ("Second line.", "Ross", "joy", 3, 1),
        ("You must\u00e2\u20ac\u2122ve had your hands full.", "Chandler", "neutral", 3, 0),
        ("Oh my God\u00e2\u20ac\u00a6 \u00e2\u20ac\u0153no\u00e2\u20ac\x9d!", "Rachel", "Surprise", 1, 0),
    ])
    utts = load_meld(tmp_path, "train")
    assert [(u.dialogue, u.turn) for u in utts] == [("meld-train-1", 0), ("meld-train-3", 0), ("meld-train-3", 1)]
    assert utts[0].text == 'Oh my God... "no"!'
    assert utts[0].label == "surprise"
    assert utts[1].text == "You must've had your hands full."
    assert utts[1].speaker == "Chandler" and utts[1].audio is None and utts[1].corpus == "meld"


def test_clean_text_fixes_correct_utf8_too() -> None:
    assert clean_text("company\u2019s  transition\u2014fast") == "company's transition - fast"


def test_meld_errors_name_the_problem(tmp_path: Path, meld_csv) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'meld'}.*--data"):
        load_meld(tmp_path, "train")
    meld_csv(tmp_path, "dev", [("Hi.", "Joey", "boredom", 0, 0)])
    with pytest.raises(ValueError, match=r"dev_sent_emo\.csv:2: unknown emotion 'boredom'"):
        load_meld(tmp_path, "dev")
    with pytest.raises(FileNotFoundError, match=r"test_sent_emo\.csv is missing"):
        load_meld(tmp_path, "test")
    with pytest.raises(ValueError, match="MELD split 'valid'"):
        load_meld(tmp_path, "valid")


def test_ravdess_loader_reads_every_field_from_the_name(tmp_path: Path, ravdess_clip) -> None:
    ravdess_clip(tmp_path, "02", "01", 3)  # calm → neutral
    ravdess_clip(tmp_path, "08", "02", 4, intensity="02")
    clips = load_ravdess(tmp_path)
    assert [(u.label, u.speaker, u.text) for u in clips] == [
        ("neutral", "actor03", "Kids are talking by the door."),
        ("surprise", "actor04", "Dogs are sitting by the door."),
    ]
    assert all(u.audio is not None and u.audio.is_file() and u.corpus == "ravdess" for u in clips)
    assert [u.speaker for u in load_ravdess(tmp_path, actors=[4])] == ["actor04"]


def test_ravdess_rejects_bad_names_and_missing_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seven two-digit fields"):
        parse_name(Path("03-01-05-01-01-01.flac"))
    with pytest.raises(ValueError, match="unknown emotion code 09"):
        parse_name(Path("03-01-09-01-01-01-01.flac"))
    with pytest.raises(ValueError, match="not an audio-only speech clip"):
        parse_name(Path("01-01-05-01-01-01-01.flac"))
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'ravdess'}.*EMO_STREAM_DATA"):
        load_ravdess(tmp_path)


def test_ravdess_splits_hold_out_whole_actors(tmp_path: Path, ravdess_clip) -> None:
    for actor in range(1, 7):
        for emotion in ("01", "05"):
            ravdess_clip(tmp_path, emotion, "01", actor)
    parts = split_ravdess(load_ravdess(tmp_path), Splits([1, 2, 3, 4], [5], [6]))
    actors = {name: {actor_of(u) for u in clips} for name, clips in parts.items()}
    assert actors == {"train": {1, 2, 3, 4}, "dev": {5}, "test": {6}}
    assert sum(len(c) for c in parts.values()) == 12
    with pytest.raises(ValueError, match=r"actors \[4\] are in both train and test"):
        split_ravdess(load_ravdess(tmp_path), Splits([1, 2, 3, 4], [5], [4, 6]))


def test_context_is_past_only_and_resets_per_dialogue(tmp_path: Path, meld_csv) -> None:
    meld_csv(tmp_path, "train", [("a", "A", "joy", 0, 0), ("b", "B", "joy", 0, 1), ("c", "A", "joy", 0, 2),
                                   ("d", "B", "joy", 0, 3), ("e", "A", "joy", 1, 0)])
    utts = load_meld(tmp_path, "train")
    sentences = {t: torch.full((4,), float(i)) for i, t in enumerate("abcde")}
    inputs = dialogue_inputs(utts, sentences, ModelDims(num_classes=7, audio_dim=3, text_dim=4, context_size=2))
    assert [len(i.context) for i in inputs] == [0, 1, 2, 2, 0]
    assert [p.sentence[0].item() for p in inputs[3].context] == [1.0, 2.0]  # b and c: the two before d
    assert [p.speaker for p in inputs[3].context] == ["B", "A"]
    assert all(i.audio is None for i in inputs)
    assert len(subsample(utts, 2)) == 4  # every 2nd dialogue: dialogue 0 only


def test_speaker_splits_of_the_shipped_config_are_disjoint() -> None:
    from emostream.training.config import load_config

    s = load_config(REPO_ROOT / "configs" / "baseline.yaml").splits
    groups = [set(s.ravdess_train_actors), set(s.ravdess_dev_actors), set(s.ravdess_test_actors)]
    assert sum(map(len, groups)) == len(set().union(*groups)) == 24
