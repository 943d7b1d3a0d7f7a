"""The corpora the training paths learn from: MELD train/dev and the RAVDESS actor splits, and any further corpora
of the registry (training/data/registry.py) that the config names."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from emostream.training.config import TrainConfig
from emostream.training.data.meld import load_meld
from emostream.training.data.ravdess import load_ravdess
from emostream.training.data.records import Utterance
from emostream.training.data.registry import CORPORA
from emostream.training.metrics import scores
from emostream.training.splits import split_ravdess, subsample

log = logging.getLogger(__name__)
Splits = dict[str, list[Utterance]]


def load_corpora(cfg: TrainConfig, data_dir: Path, every: int) -> tuple[Splits, Splits]:
    """MELD train/dev and the RAVDESS actor splits, keeping every ``every``-th dialogue/clip (smoke runs)."""
    assert cfg.splits is not None
    meld = {s: subsample(load_meld(data_dir, s), every) for s in ("train", "dev")}
    rav = {k: subsample(v, every) for k, v in split_ravdess(load_ravdess(data_dir), cfg.splits).items()}
    log.info("MELD train %d / dev %d utterances; RAVDESS train %d / dev %d / test %d clips",
             len(meld["train"]), len(meld["dev"]), len(rav["train"]), len(rav["dev"]), len(rav["test"]))
    return meld, rav


def load_more(names: list[str], data_dir: Path, every: int, include_first: bool = False) -> dict[str, Splits]:
    """The registry's splits of each named corpus beyond RAVDESS and MELD (``include_first``: of those too, split as
    the registry fixes them), keeping every ``every``-th dialogue/clip."""
    out = {}
    for name in names:
        if include_first or name not in ("ravdess", "meld"):
            out[name] = {k: subsample(v, every) for k, v in CORPORA[name].splits(data_dir).items()}
            log.info("%s: %s", name, ", ".join(f"{k} {len(v)}" for k, v in out[name].items()))
    return out


def merged(first: Splits, more: dict[str, Splits], split: str) -> list[Utterance]:
    """One split of every corpus, corpus after corpus (each in its own dialogue order)."""
    return first.get(split, []) + [u for splits in more.values() for u in splits[split]]


def per_corpus_score(utts: list[Utterance], log_probs: np.ndarray, labels: tuple[str, ...]) -> float:
    """Mean over the corpora in ``utts`` of each one's own metric (registry), with the argmax restricted to its
    classes, so that a small corpus counts as much as a large one in early stopping and model choice."""
    values = []
    for name in dict.fromkeys(u.corpus for u in utts):
        idx = [i for i, u in enumerate(utts) if u.corpus == name]
        c = CORPORA[name]
        inside = np.array([label in c.classes for label in labels])
        pred = np.where(inside, log_probs[idx], -np.inf).argmax(1)
        y = np.array([labels.index(utts[i].label) for i in idx])
        values.append(scores(y, pred, labels)[c.metric])
    return float(np.mean(values))
