"""Seed 000: parallel-convolution (Pconv) stems fused early, then an attention BLSTM.

Why: the seed paper found that fusing audio and text after one Pconv layer per modality beats both early
(input) and late (decision) fusion, because each modality first gets its own local patterns and the BLSTM
then models their joint temporal course.

Adaptations: MFCC frames stand in for the audio input as in the paper; MiniLM token states stand in for the
word embeddings (GloVe/word2vec cannot be loaded offline). Frames and tokens differ in number, so each stem
ends with an area-weighted resampling to ``steps`` steps (:func:`resample_steps`), which gives the equal
output shapes that fusion needs; a missing modality is left out of the fusion (mean of the present ones).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import AttentionPool, MaskedBiRNN, present, resample_steps
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


class Pconv(nn.Module):
    """Parallel convolution block of seed 000 over ``(B, C_in, K)`` → ``(B, C_out, K)``.

    Max pooling (C_in channels) and Bconv (conv → LeakyReLU → BN, C_out - C_in channels) run in parallel and
    are concatenated; the depthwise-separable Sconv (C_out channels) is added to that.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3) -> None:
        super().__init__()
        if c_out <= c_in:
            raise ValueError(f"Pconv needs c_out > c_in (the max-pool branch keeps c_in channels); got {c_in}->{c_out}")
        pad = kernel // 2
        self.pool = nn.MaxPool1d(kernel, stride=1, padding=pad)
        self.bconv = nn.Sequential(nn.Conv1d(c_in, c_out - c_in, kernel, padding=pad), nn.LeakyReLU(0.1),
                                   nn.BatchNorm1d(c_out - c_in))
        self.sconv = nn.Sequential(nn.Conv1d(c_in, c_in, kernel, padding=pad, groups=c_in),
                                   nn.Conv1d(c_in, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.pool(x), self.bconv(x)], dim=1) + self.sconv(x)


class Stem(nn.Module):
    """Per-modality stem: conv → LeakyReLU → BN at the input's own rate (padding zeroed), then resampling
    of the valid steps to the common length."""

    def __init__(self, in_dim: int, channels: int, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.conv = nn.Sequential(nn.Conv1d(in_dim, channels, 3, padding=1), nn.LeakyReLU(0.1),
                                  nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        h = self.conv((x * m).transpose(1, 2)).transpose(1, 2) * m
        return resample_steps(h, mask, self.steps).transpose(1, 2)  # (B, C, steps)


@register
class PconvBLSTM(EmotionModel):
    """Seed 000: Pconv stems per modality, fusion after one Pconv layer, two attention-BLSTM layers."""

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
        self.fused_pconv = Pconv(2 * channels, 4 * channels)
        self.blstm = MaskedBiRNN(4 * channels, lstm_hidden, lstm_layers, "lstm", dropout)
        self.attention = AttentionPool(2 * lstm_hidden)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * lstm_hidden, dims.num_classes))

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        text_mask = batch.text_mask & batch.has_text.unsqueeze(1)
        audio = self.audio_pconv(self.audio_stem(self.norm(batch.audio, audio_mask), audio_mask))
        text = self.text_pconv(self.text_stem(batch.text, text_mask))
        count = (batch.has_audio.to(audio.dtype) + batch.has_text.to(audio.dtype)).clamp(min=1.0)
        fused = (present(audio, batch.has_audio) + present(text, batch.has_text)) / count.view(-1, 1, 1)
        h = self.fused_pconv(fused).transpose(1, 2)  # (B, steps, 4C)
        steps = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        h = self.blstm(h, steps)
        return self.head(self.attention(h, steps))
