"""Label-matched pairs: audio from one corpus, text (with its real dialogue context) from another.

No corpus here pairs emotional speech with its own transcript, so fused training and the fused held-out score
pair each audio clip with a text utterance of the same unified label (docs/training.md, "Fusion without a
paired corpus").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from emostream.models.collate import UtteranceInput

log = logging.getLogger(__name__)
PAIR_SEED = 0  # held-out pairs are drawn with this seed, so every bundle is scored on the same pairs


def match_labels(audio_labels: np.ndarray, text_labels: np.ndarray, rng: np.random.Generator,
                 per_clip: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(audio_index, text_index)`` arrays: each audio item ``per_clip`` times, each time with a text item of
    the same label drawn uniformly (with replacement across clips). Audio items whose label no text item has
    are left out, with a warning (only a heavily subsampled smoke run lacks a label)."""
    audio_labels, text_labels = np.asarray(audio_labels), np.asarray(text_labels)
    pools = {int(c): np.flatnonzero(text_labels == c) for c in np.unique(audio_labels)}
    if empty := sorted(c for c, pool in pools.items() if not len(pool)):
        log.warning("no text utterance with label index %s: %d audio items left unpaired", empty,
                    int(np.isin(audio_labels, empty).sum()))
    keep = np.flatnonzero(~np.isin(audio_labels, empty))
    a = np.repeat(keep, per_clip)
    t = np.empty_like(a)
    for c, pool in pools.items():
        if not len(pool):
            continue
        sel = audio_labels[a] == c
        t[sel] = rng.choice(pool, size=int(sel.sum()))
    return a, t


def paired_inputs(audio: Sequence[torch.Tensor], text_inputs: Sequence[UtteranceInput], a_idx: np.ndarray,
                  t_idx: np.ndarray) -> list[UtteranceInput]:
    """The text utterance (sentence, speaker, past-only context) with the audio clip's frames as its audio."""
    return [replace(text_inputs[j], audio=audio[i]) for i, j in zip(a_idx, t_idx, strict=True)]
