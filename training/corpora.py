"""The corpora both training paths learn from: MELD train/dev and the RAVDESS actor splits."""

from __future__ import annotations

import logging
from pathlib import Path

from emostream.training.config import TrainConfig
from emostream.training.data.meld import load_meld
from emostream.training.data.ravdess import load_ravdess
from emostream.training.data.records import Utterance
from emostream.training.splits import split_ravdess, subsample

log = logging.getLogger(__name__)


def load_corpora(cfg: TrainConfig, data_dir: Path, every: int) -> tuple[dict[str, list[Utterance]],
                                                                       dict[str, list[Utterance]]]:
    """MELD train/dev and the RAVDESS actor splits, keeping every ``every``-th dialogue/clip (smoke runs)."""
    assert cfg.splits is not None
    meld = {s: subsample(load_meld(data_dir, s), every) for s in ("train", "dev")}
    rav = {k: subsample(v, every) for k, v in split_ravdess(load_ravdess(data_dir), cfg.splits).items()}
    log.info("MELD train %d / dev %d utterances; RAVDESS train %d / dev %d / test %d clips",
             len(meld["train"]), len(meld["dev"]), len(rav["train"]), len(rav["dev"]), len(rav["test"]))
    return meld, rav
