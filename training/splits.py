"""Speaker-independent RAVDESS splits: whole actors go to exactly one of train, dev and test."""

from __future__ import annotations

from emostream.training.config import Splits
from emostream.training.data.ravdess import actor_of
from emostream.training.data.records import Utterance

RAVDESS_SPLITS = ("train", "dev", "test")


def ravdess_actors(splits: Splits, split: str) -> list[int]:
    if split not in RAVDESS_SPLITS:
        raise ValueError(f"RAVDESS split {split!r} does not exist; use one of {', '.join(RAVDESS_SPLITS)}")
    return {"train": splits.ravdess_train_actors, "dev": splits.ravdess_dev_actors,
            "test": splits.ravdess_test_actors}[split]


def split_ravdess(clips: list[Utterance], splits: Splits) -> dict[str, list[Utterance]]:
    """Clips of each split; refuses actor overlap, the leak that makes speaker-dependent scores look good."""
    by_split = {name: set(ravdess_actors(splits, name)) for name in RAVDESS_SPLITS}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        if shared := by_split[a] & by_split[b]:
            raise ValueError(f"RAVDESS actors {sorted(shared)} are in both {a} and {b}")
    return {name: [u for u in clips if actor_of(u) in actors] for name, actors in by_split.items()}


def subsample(utts: list[Utterance], every: int) -> list[Utterance]:
    """Every ``every``-th dialogue (whole dialogues, so context stays real), for smoke runs; 1 keeps all."""
    if every < 1:
        raise ValueError(f"subsample step must be at least 1, not {every}")
    chosen = set(sorted({u.dialogue for u in utts})[::every])
    return [u for u in utts if u.dialogue in chosen]
