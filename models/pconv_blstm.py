"""Seed 000: parallel-convolution (Pconv) stems, modalities concatenated after one Pconv, an attention BLSTM.

Why: the seed paper found that fusing audio and text after one Pconv layer per modality beats both early
(input) and late (decision) fusion, because each modality first gets its own local patterns and the shared
Pconv and BLSTM then model their joint course.

=====================================================  ==========================================================
Paper                                                  Code
=====================================================  ==========================================================
stem: conv → LeakyReLU → BN → pooling, per modality    :class:`Stem` (max pool 2, masked)
Pconv: max pool ‖ Bconv (conv → LeakyReLU → BN),       :class:`Pconv`
plus Sconv (depthwise-separable conv → LeakyReLU →
BN); LeakyReLU slope 0.02
one Pconv per modality, then **concatenation**,        ``audio_pconv``, ``text_pconv``, ``torch.cat`` on
then a shared Pconv                                    channels, ``fused_pconv``
2 BLSTM layers of 128 with attention, FC               ``blstm`` (``lstm_layers`` 2, ``lstm_hidden`` 128),
                                                       :class:`AttentionPool`, ``head``
audio: MFCC frames                                     FeatureSpec kind "mfcc" (40 + deltas)
text: word embeddings (GloVe / word2vec)               MiniLM token states (``text_level`` "token")
=====================================================  ==========================================================

Departures and why: GloVe/word2vec cannot be loaded offline, so the packaged encoder's token states stand in.
Frames and tokens differ in number, so each stem ends with an area-weighted resampling of its valid steps to
``steps`` steps (:func:`resample_steps`), which gives the equal shapes that channel concatenation needs (the
paper cut both to a fixed length). A missing modality's half of the concatenation is zeros.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import AttentionPool, MaskedBiRNN, pool_mask, present, resample_steps
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register

SLOPE = 0.02  # the paper's LeakyReLU slope


def conv_act_bn(c_in: int, c_out: int, kernel: int, groups: int = 1) -> list[nn.Module]:
    """Conv → LeakyReLU(0.02) → BN, "same" padding: the paper's unit in the stems, Bconv and Sconv."""
    return [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, groups=groups), nn.LeakyReLU(SLOPE),
            nn.BatchNorm1d(c_out)]


class Pconv(nn.Module):
    """Parallel convolution block of seed 000 over ``(B, C_in, K)`` → ``(B, C_out, K)``.

    Max pooling (C_in channels) and Bconv (C_out - C_in channels) run in parallel and are concatenated; the
    depthwise-separable Sconv (depthwise conv, pointwise conv to C_out → LeakyReLU → BN) is added to that.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3) -> None:
        super().__init__()
        if c_out <= c_in:
            raise ValueError(f"Pconv needs c_out > c_in (the max-pool branch keeps c_in channels); got {c_in}->{c_out}")
        self.pool = nn.MaxPool1d(kernel, stride=1, padding=kernel // 2)
        self.bconv = nn.Sequential(*conv_act_bn(c_in, c_out - c_in, kernel))
        self.sconv = nn.Sequential(nn.Conv1d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in),
                                   *conv_act_bn(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(x), self.bconv(x)], dim=1) + self.sconv(x)


class Stem(nn.Module):
    """Per-modality stem: conv → LeakyReLU → BN → max pool(2) at the input's own rate, padding excluded from the
    pool, then resampling of the valid steps to the common length ``(B, C, steps)``."""

    def __init__(self, in_dim: int, channels: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.conv = nn.Sequential(*conv_act_bn(in_dim, channels, 3))
        self.pool = nn.MaxPool1d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1)
        h = self.conv((x * mask.unsqueeze(-1).to(x.dtype)).transpose(1, 2))
        h = self.pool(h.masked_fill(~m, torch.finfo(h.dtype).min))  # BN output can be negative: padding never wins
        mask = pool_mask(mask, 2)
        h = h.masked_fill(~mask.unsqueeze(1), 0.0)
        return resample_steps(h.transpose(1, 2), mask, self.steps).transpose(1, 2)


@register
class PconvBLSTM(EmotionModel):
    """Seed 000: stem + Pconv per modality → channel concatenation → shared Pconv → 2-layer attention BLSTM."""

    architecture = "pconv_blstm"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="mfcc", n_mfcc=40, deltas=True)
    text_level: ClassVar[Literal["sentence", "token"]] = "token"

    def __init__(self, dims: ModelDims, channels: int = 64, steps: int = 50, lstm_hidden: int = 128,
                 lstm_layers: int = 2, dropout: float = 0.3) -> None:
        super().__init__(dims, channels=channels, steps=steps, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers,
                         dropout=dropout)
        self.norm = InputNorm(dims.audio_dim)
        self.audio_stem = Stem(dims.audio_dim, channels, steps)
        self.text_stem = Stem(dims.text_dim, channels, steps)
        self.audio_pconv = Pconv(channels, 2 * channels)
        self.text_pconv = Pconv(channels, 2 * channels)
        self.fused_pconv = Pconv(4 * channels, 8 * channels)  # over [audio ‖ text] channels
        self.blstm = MaskedBiRNN(8 * channels, lstm_hidden, lstm_layers, "lstm", dropout)
        self.attention = AttentionPool(2 * lstm_hidden)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * lstm_hidden, dims.num_classes))

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        text_mask = batch.text_mask & batch.has_text.unsqueeze(1)
        audio = self.audio_pconv(self.audio_stem(self.norm(batch.audio, audio_mask), audio_mask))
        text = self.text_pconv(self.text_stem(batch.text, text_mask))
        fused = torch.cat([present(audio, batch.has_audio), present(text, batch.has_text)], dim=1)
        h = self.fused_pconv(fused).transpose(1, 2)  # (B, steps, 8C)
        steps = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        return self.head(self.attention(self.blstm(h, steps), steps))
