"""Seed 002: mel-spectrogram CNN, utterance-level text through a BiGRU over the dialogue, attention fusion.

Why: the seed paper's parallel first convolutions look along time (kernel 10x2) and along frequency (2x8)
at once; a BiGRU over the dialogue's utterance embeddings carries conversational context; and the attention
fusion learns per utterance how far to trust each modality, which also lets a missing modality simply drop
out of the softmax.

====================================================  ===========================================================
Paper                                                 Code
====================================================  ===========================================================
log-mel spectrogram                                   FeatureSpec kind "mel" (64 bands, 10 ms)
(10,2) ‖ (2,8) convolutions, 3x3 conv layers to 80,   :class:`MelCNN` (``channels`` 32-48-64-80)
max pooling, FC                                       ``audio_fc`` (to ``fusion_dim`` 250)
BERT utterance embedding → FC 100 → BiGRU 100 over    ``text_fc_in`` (100) → ``gru`` (``gru_hidden`` 100) over
the dialogue → FC                                     the dialogue's sentence vectors → ``text_fc``
attention fusion ``softmax(wᵀ tanh(P F))``            ``fusion_proj`` (P), ``fusion_score`` (w)
====================================================  ===========================================================

Departures and why: BERT cannot be loaded offline; the packaged encoder's sentence vector (its mean-pooled
token states) stands in for BERT's utterance embedding, which is what the dialogue GRU reads, and the context
buffer keeps only sentence vectors of past utterances. The paper's BiGRU reads the whole dialogue, future
included; a stream has only the past, so the dialogue here is every past utterance the context holds
(``context_size``: the configs keep 32, more than any MELD dialogue's past) and the current one, last. The
CNN's output is averaged over its valid time steps and frequency bins before the FC so that any utterance
length works.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import MaskedBiRNN, final_states, masked_softmax, pool_mask
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


class MelCNN(nn.Module):
    """(10,2) and (2,8) convolutions in parallel (8 channels each, concatenated to 16), then 3x3 conv → BN → ReLU
    layers growing to 80 channels, max pooling 2x2 after the first two. Input ``(B, T, F)``, output
    ``(B, channels[-1])`` averaged over valid steps; padding is zeroed after every layer."""

    def __init__(self, channels: tuple[int, ...] = (32, 48, 64, 80), pooled_layers: int = 2) -> None:
        super().__init__()
        self.pooled_layers = pooled_layers
        self.time_conv = nn.Conv2d(1, 8, (10, 2))
        self.freq_conv = nn.Conv2d(1, 8, (2, 8))
        self.merge = nn.Sequential(nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in zip((16, *channels[:-1]), channels, strict=True))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    @staticmethod
    def _same(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
        kt, kf = kernel  # "same" zero padding for even kernels: the extra row/column goes after
        return nn.functional.pad(x, ((kf - 1) // 2, kf // 2, (kt - 1) // 2, kt // 2))

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = mel.unsqueeze(1)  # (B, 1, T, F)
        m = mask[:, None, :, None].to(x.dtype)
        x = x * m
        x = torch.cat([self.time_conv(self._same(x, (10, 2))), self.freq_conv(self._same(x, (2, 8)))], dim=1)
        x = self.merge(x) * m
        for i, layer in enumerate(self.layers):
            x = layer(x) * mask[:, None, :, None].to(x.dtype)
            if i < self.pooled_layers:
                x = self.pool(x)  # values ≥ 0 after ReLU, so zeroed padding never wins
                mask = pool_mask(mask, 2)
        m = mask[:, None, :, None].to(x.dtype)
        return (x * m).sum((2, 3)) / (m.sum((2, 3)) * x.shape[3]).clamp(min=1.0)


@register
class MelCNNBiGRU(EmotionModel):
    """Seed 002: mel CNN + FC for audio, FC(100) → BiGRU over the dialogue → FC for text, attention fusion."""

    architecture = "melcnn_bigru"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="mel", n_mels=64, deltas=False)
    text_level: ClassVar[Literal["sentence", "token"]] = "sentence"

    def __init__(self, dims: ModelDims, channels: tuple[int, ...] = (32, 48, 64, 80), text_proj: int = 100,
                 gru_hidden: int = 100, fusion_dim: int = 250, dropout: float = 0.3) -> None:
        channels = tuple(channels)
        super().__init__(dims, channels=list(channels), text_proj=text_proj, gru_hidden=gru_hidden,
                         fusion_dim=fusion_dim, dropout=dropout)
        self.norm = InputNorm(dims.audio_dim)
        self.cnn = MelCNN(channels)
        self.audio_fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels[-1], fusion_dim))
        self.text_fc_in = nn.Sequential(nn.Linear(dims.text_dim, text_proj), nn.ReLU())
        self.gru = MaskedBiRNN(text_proj, gru_hidden, cell="gru")
        self.text_fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * gru_hidden, fusion_dim))
        self.fusion_proj = nn.Linear(fusion_dim, fusion_dim, bias=False)  # P
        self.fusion_score = nn.Linear(fusion_dim, 1, bias=False)  # w
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion_dim, dims.num_classes))

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        audio = self.audio_fc(self.cnn(self.norm(batch.audio, audio_mask), audio_mask))
        # The dialogue as a sequence: H past utterances (right-aligned) and the current one last.
        dialogue = torch.cat([batch.context, batch.sentence.unsqueeze(1)], dim=1)
        valid = torch.cat([batch.context_mask, torch.ones_like(batch.has_text).unsqueeze(1)], dim=1)
        valid = valid & batch.has_text.unsqueeze(1)
        # The current utterance is the last valid step: the GRU's final states in both directions summarise the dialogue
        # up to it (its backward output at the last step would have read the current utterance alone).
        text = self.text_fc(final_states(self.gru(self.text_fc_in(dialogue), valid), valid))
        feats = torch.stack([audio, text], dim=1)  # F: (B, 2, n)
        scores = self.fusion_score(torch.tanh(self.fusion_proj(feats))).squeeze(-1)  # wᵀ tanh(P F)
        weights = masked_softmax(scores, torch.stack([batch.has_audio, batch.has_text], dim=1))
        fused = (weights.unsqueeze(-1) * feats).sum(1)  # F · weightsᵀ; a missing modality has weight 0
        return self.head(fused)
