"""Audio changes applied to feature frames rather than waveforms, so the feature cache stays valid.

A gain of g dB adds g to every log-mel bin; with torchaudio's orthonormal DCT that is g * sqrt(n_mels) on
MFCC 0 alone, and deltas do not change (tests/training/test_augment.py checks this against real audio).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from emostream.models.features import FeatureSpec
from emostream.models.interface import EmotionBatch


def shift_level(batch: EmotionBatch, spec: FeatureSpec, gain_db: torch.Tensor) -> EmotionBatch:
    """The batch as if each utterance had been recorded ``gain_db[i]`` dB louder (log-mel, MFCC, LLD frames)."""
    if spec.kind == "whisper":
        raise ValueError("a level shift is not defined on Whisper encoder states (use gain_db: 0)")
    audio = batch.audio.clone()
    if spec.kind == "mfcc":
        audio[:, :, 0] += (gain_db * spec.n_mels**0.5)[:, None]
    else:
        audio[:, :, : spec.n_mels] += gain_db[:, None, None]
    return replace(batch, audio=audio * batch.audio_mask.unsqueeze(-1))


def augment_audio(batch: EmotionBatch, spec: FeatureSpec, gain_db: float, crop_min: float,
                  gen: torch.Generator) -> EmotionBatch:
    """Random level change of up to ``gain_db`` either way (microphones differ from the studio's) and a
    random contiguous crop keeping at least ``crop_min`` of the valid frames (VAD cuts vary)."""
    b, t = batch.audio_mask.shape
    if gain_db > 0:
        batch = shift_level(batch, spec, (torch.rand(b, generator=gen) * 2 - 1) * gain_db)
    if crop_min < 1:
        lengths = batch.audio_mask.sum(1)
        keep = (lengths * (crop_min + (1 - crop_min) * torch.rand(b, generator=gen))).long().clamp(min=1)
        start = ((lengths - keep) * torch.rand(b, generator=gen)).long()
        pos = torch.arange(t)[None, :]
        mask = batch.audio_mask & (pos >= start[:, None]) & (pos < (start + keep)[:, None])
        batch = replace(batch, audio=batch.audio * mask.unsqueeze(-1), audio_mask=mask)
    return batch
