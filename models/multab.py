"""Seed 003: Mul-TAB, multimodal cross-attention followed by TIM-Net temporal-aware blocks.

Why: self-attention first models each modality on its own; cross-modal attention in both directions
(speech queries text, text queries speech) with residual + LayerNorm aligns frames and words without a
forced alignment; TIM-Net's temporal-aware blocks (dilated causal convolutions whose sigmoid output gates
their input) then model the joint sequence at several time scales cheaply.

Adaptations: MFCC frames (39 coefficients, as TIM-Net) stand in for the paper's frame-level speech
encoder, MiniLM token states for its BERT tokens (neither can be loaded offline here). The two attended
sequences are concatenated along time, speech then text, with their valid steps packed to the front so that
the causal convolutions never see padding.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import MaskedMultiheadAttention, gather_steps, left_align, masked_mean, present
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


class TemporalAwareBlock(nn.Module):
    """TIM-Net TAB: two dilated causal conv → BN → ReLU → dropout, then ``x · sigmoid(·)``."""

    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.left = (kernel - 1) * dilation
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, dilation=dilation) for _ in range(2))
        self.norms = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(2))
        self.dropout = nn.Dropout1d(dropout)  # Keras SpatialDropout1D: whole channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, D, T), mask (B, 1, T)
        h = x
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = self.dropout(torch.relu(norm(conv(nn.functional.pad(h, (self.left, 0)))))) * mask
        return x * torch.sigmoid(h) * mask


class CrossModalLayer(nn.Module):
    """``LN(q + MHA(q, kv))``; the attention term is zero for rows whose other modality is absent."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = MaskedMultiheadAttention(dim, dim, heads, dim // heads, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, q_mask: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        return self.norm(q + self.attention(q, kv, kv_mask)) * q_mask.unsqueeze(-1).to(q.dtype)


@register
class MulTAB(EmotionModel):
    """Seed 003: per-modality MHSA → Conv1D to ``dim`` → bidirectional cross-attention → 3 TABs → FC."""

    architecture = "multab"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="mfcc", n_mfcc=39, deltas=False)
    text_level: ClassVar[Literal["sentence", "token"]] = "token"

    def __init__(self, dims: ModelDims, dim: int = 128, heads: int = 4, tab_blocks: int = 3, tab_kernel: int = 2,
                 dropout: float = 0.1) -> None:
        super().__init__(dims, dim=dim, heads=heads, tab_blocks=tab_blocks, tab_kernel=tab_kernel, dropout=dropout)
        self.norm = InputNorm(dims.audio_dim)
        head_dim = dim // heads
        self.audio_self = MaskedMultiheadAttention(dims.audio_dim, dims.audio_dim, heads, head_dim, dropout)
        self.text_self = MaskedMultiheadAttention(dims.text_dim, dims.text_dim, heads, head_dim, dropout)
        self.audio_proj = nn.Conv1d(dims.audio_dim, dim, 1)
        self.text_proj = nn.Conv1d(dims.text_dim, dim, 1)
        self.speech_to_text = CrossModalLayer(dim, heads, dropout)  # speech queries text
        self.text_to_speech = CrossModalLayer(dim, heads, dropout)  # text queries speech
        self.tabs = nn.ModuleList(TemporalAwareBlock(dim, tab_kernel, 2**i, dropout) for i in range(tab_blocks))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, dims.num_classes))

    @staticmethod
    def _encode(x: torch.Tensor, mask: torch.Tensor, attention: nn.Module, proj: nn.Module) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        x = (x + attention(x, x, mask)) * m
        return proj(x.transpose(1, 2)).transpose(1, 2) * m

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        text_mask = batch.text_mask & batch.has_text.unsqueeze(1)
        audio = self._encode(self.norm(batch.audio, audio_mask), audio_mask, self.audio_self, self.audio_proj)
        text = self._encode(batch.text * text_mask.unsqueeze(-1).to(batch.text.dtype), text_mask, self.text_self,
                            self.text_proj)
        audio, text = (self.speech_to_text(audio, audio_mask, text, text_mask),
                       self.text_to_speech(text, text_mask, audio, audio_mask))
        seq, mask = torch.cat([audio, text], dim=1), torch.cat([audio_mask, text_mask], dim=1)
        order = left_align(mask)
        seq, mask = gather_steps(seq, order), mask.gather(1, order)
        h, m = seq.transpose(1, 2), mask.unsqueeze(1).to(seq.dtype)
        for tab in self.tabs:
            h = tab(h, m)
        pooled = present(masked_mean(h.transpose(1, 2), mask), batch.has_audio | batch.has_text)
        return self.head(pooled)
