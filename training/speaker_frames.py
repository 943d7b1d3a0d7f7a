"""Speaker-normalised frames for training and scoring (models/speaker_norm.py), as the stream would see them.

Frames that are scored (dev for early stopping, test) get the stream's running statistics: each speaker's
utterances in a seeded random order when the corpus has no conversation order (RAVDESS's isolated clips), otherwise
in the order given, each normalised by that speaker's frames up to and including it. So a held-out speaker's first
clips are scored as a live stream would score a new caller's first words; ``first_frames`` scores every clip so.

Training frames use each speaker's statistics over all of their utterances (the steady state) and, where the
config asks, the other renderings as well: a model that only saw the steady state reads the offset of a new
caller's first words (normalised mostly by the corpus prior) as emotion, and one whose speakers were all normalised
by a prior that knew their corpus reads a new recording domain's offset so (``new_domain_frames``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emostream.models.speaker_norm import SpeakerNorm, SpeakerPrior, normalise_all, normalise_running
from emostream.training.data.records import Utterance

ORDER_SEED = 0  # the same clip order for every bundle, so scores compare


def steady_frames(frames: Sequence[torch.Tensor], utts: Sequence[Utterance],
                  prior: SpeakerPrior | None) -> list[torch.Tensor]:
    """Training frames (``utts``: the utterances the frames belong to, in the same order)."""
    return list(frames) if prior is None else normalise_all(frames, [u.speaker for u in utts], prior)


def heard_frames(frames: Sequence[torch.Tensor], utts: Sequence[Utterance], prior: SpeakerPrior | None,
                 shuffle: bool = True, seed: int = ORDER_SEED) -> list[torch.Tensor]:
    """Scored frames, as the stream would normalise them (``shuffle``: no conversation order to follow, so a
    random one drawn with ``seed``)."""
    if prior is None:
        return list(frames)
    order = np.random.default_rng(seed).permutation(len(frames)) if shuffle else None
    return normalise_running(frames, [u.speaker for u in utts], prior, order)


def first_frames(frames: Sequence[torch.Tensor], utts: Sequence[Utterance],
                 prior: SpeakerPrior | None) -> list[torch.Tensor]:
    """Every clip normalised as its speaker's first utterance in a stream: by the corpus prior and itself alone."""
    if prior is None:
        return list(frames)
    return [SpeakerNorm(prior)(u.speaker, f) for f, u in zip(frames, utts, strict=True)]


def new_domain_frames(frames: Sequence[torch.Tensor], utts: Sequence[Utterance],
                      prior: SpeakerPrior) -> list[torch.Tensor]:
    """Every clip normalised by a prior fitted on the other corpora's ``frames`` alone (weighted as ``prior``'s
    frames), each speaker's clips heard in the given order: a speaker's first clip as a first utterance, later ones
    with that speaker's running statistics. The stream's view of a caller in a domain its prior never saw."""
    corpora = [u.corpus for u in utts]
    norms = {c: SpeakerNorm(SpeakerPrior.fit([f for f, o in zip(frames, corpora, strict=True) if o != c],
                                             prior.frames)) for c in dict.fromkeys(corpora)}
    return [norms[u.corpus](u.speaker, f) for f, u in zip(frames, utts, strict=True)]


def normalised_splits(raw: dict[str, list[torch.Tensor]], utts: dict[str, list[Utterance]], prior_frames: float,
                      shuffle: bool = True) -> tuple[SpeakerPrior | None, dict[str, list[torch.Tensor]]]:
    """The prior fitted on the training split's raw frames (None when ``prior_frames`` is 0: no normalisation), and
    every split's frames: "train" at the steady state, the others as heard. ``utts[k]`` lists the utterances
    whose frames ``raw[k]`` holds, in the same order."""
    prior = SpeakerPrior.fit(raw["train"], prior_frames) if prior_frames else None
    return prior, {k: steady_frames(v, utts[k], prior) if k == "train" else heard_frames(v, utts[k], prior, shuffle)
                   for k, v in raw.items()}
