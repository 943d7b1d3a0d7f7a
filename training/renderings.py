"""The other ways a training clip can be heard in an epoch: through a phone line (training/telephone.py), 10 %
slower or faster (training/speed.py) and, with speaker normalisation, standardised as a stream would at a random
point of its speaker's talk, as the speaker's first words, or by a prior that never heard its corpus
(training/speaker_frames.py). Both training paths (the branch-wise audio branch and fused training) draw each
clip's rendering per epoch from the same list."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from emostream.models.speaker_norm import SpeakerPrior
from emostream.training.cache import audio_frames
from emostream.training.config import AudioTraining, TrainConfig
from emostream.training.data.records import Utterance
from emostream.training.speaker_frames import first_frames, heard_frames, new_domain_frames, steady_frames

log = logging.getLogger(__name__)


def renderings(cfg: TrainConfig, at: AudioTraining, train: list[Utterance], raw: list[torch.Tensor],
               prior: SpeakerPrior | None, cache_dir: Path) -> Iterator[tuple[float, list[torch.Tensor]]]:
    """Each rendering of the training clips ``train`` (raw clean frames ``raw``) beyond the clean steady state, with
    the probability that an epoch hears a clip so; the steady state keeps the rest. One at a time, since each is as
    large as the clips' frames (a caller that summarises them never holds two)."""
    new_domain = at.new_domain if len({u.corpus for u in train}) > 1 else 0.0
    if new_domain != at.new_domain:  # a leave-one-corpus-out fold of two corpora trains on one
        log.info("new_domain: one training corpus, no other corpus's prior to render it with; left out")
    norms = [(1.0 - at.running_order - at.first_utterance - new_domain, lambda r: steady_frames(r, train, prior)),
             (at.running_order, lambda r: heard_frames(r, train, prior, seed=cfg.seed)),
             (at.first_utterance, lambda r: first_frames(r, train, prior)),
             (new_domain, lambda r: new_domain_frames(r, train, prior))]
    channels = [(1.0 - at.telephone - at.speed, lambda: raw)]
    for channel, p in (("telephone", at.telephone), ("slow", at.speed / 2), ("fast", at.speed / 2)):
        if p:
            channels.append((p, lambda channel=channel: audio_frames([u.audio for u in train if u.audio],
                                                                     cfg.features, cfg.vad, cache_dir,
                                                                     channel=channel)))
    for c, (p_channel, rendered) in enumerate(channels):
        frames = rendered()
        for n, (p_norm, norm) in enumerate(norms):
            if p_channel * p_norm > 0 and (c, n) != (0, 0):  # (clean, steady) is the clips' own rendering
                yield p_channel * p_norm, norm(frames)
