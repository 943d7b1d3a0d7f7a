"""Speaker-independent splits: whole RAVDESS actors go to exactly one of train, dev and test; small corpora get
leave-speakers-out k-fold splits."""

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


def speaker_folds(utts: list[Utterance], k: int) -> list[list[str]]:
    """``k`` disjoint groups of speakers covering every speaker, balanced by utterance count (greedy: the
    speaker with most utterances goes to the fold with fewest so far; ties by name, so it is deterministic)."""
    counts: dict[str, int] = {}
    for u in utts:
        counts[u.speaker] = counts.get(u.speaker, 0) + 1
    if k < 2 or k > len(counts):
        raise ValueError(f"leave-speakers-out k-fold needs 2 <= k <= number of speakers ({len(counts)}), not {k}")
    folds: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for speaker in sorted(counts, key=lambda s: (-counts[s], s)):
        i = min(range(k), key=lambda j: (sizes[j], j))
        folds[i].append(speaker)
        sizes[i] += counts[speaker]
    return [sorted(f) for f in folds]


def kfold_split(utts: list[Utterance], k: int, fold: int) -> dict[str, list[Utterance]]:
    """Split ``fold`` of a leave-speakers-out k-fold: fold ``fold`` is test, the next one (cyclically) dev for
    early stopping, the other k-2 train (k = 2: no dev split, an empty list). No speaker is in two splits."""
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}, not {fold}")
    folds = speaker_folds(utts, k)
    test = set(folds[fold])
    dev = set(folds[(fold + 1) % k]) if k > 2 else set()
    return {"train": [u for u in utts if u.speaker not in test | dev],
            "dev": [u for u in utts if u.speaker in dev],
            "test": [u for u in utts if u.speaker in test]}
