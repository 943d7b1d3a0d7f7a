"""Seed 003: Mul-TAB, self-attention per modality, bidirectional cross-modal attention, temporal-aware blocks.

Why: self-attention first models each modality on its own; cross-modal attention in both directions (speech
queries text, text queries speech) with residual + LayerNorm aligns frames and words without a forced
alignment; temporal-aware blocks (convolutions whose sigmoid output gates their input) then model the joint
sequence cheaply.

=====================================================  ==========================================================
Paper                                                  Code
=====================================================  ==========================================================
wav2vec2 frame states (768)                            Whisper tiny.en encoder states (FeatureSpec kind
                                                       "whisper"), a linear map to ``dim`` 768
RoBERTa token states (768)                             MiniLM token states (``text_level`` "token"), a linear
                                                       map to ``dim`` 768
2 self-attention layers of 8 heads per modality        :class:`EncoderLayer` x ``layers`` (2), ``heads`` 8
bidirectional cross-modal attention, residual + LN     :class:`CrossModalLayer`: speech→text, text→speech
concatenation, 3 TABs with regular convolutions        along time; :class:`TemporalAwareBlock` x ``tab_blocks``
                                                       (3), undilated, non-causal ("same") convolutions
FC 2 x 768 with GELU                                   ``head``: :func:`mlp` [768, 768, 768, C]
=====================================================  ==========================================================

Departures and why: wav2vec2 and RoBERTa cannot be loaded offline; the strongest packaged encoders stand in,
and their 384-d states are mapped linearly to the paper's width. The self-attention layers are post-LN
Transformer encoder layers with a 4 x ``dim`` GELU feed-forward (the usual layer; its width is not in the
description this module follows), as is the TAB kernel (3, so that "same" padding is symmetric). The two
attended sequences are concatenated along time, speech then text, valid steps packed to the front, so padding
never sits between them; the TABs' output is averaged over the valid steps before the FC.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import MaskedMultiheadAttention, gather_steps, left_align, masked_mean, mlp
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


class CrossModalLayer(nn.Module):
    """``LN(q + MHA(q, kv))``, padding zeroed; the attention term is zero for rows whose keys are all absent."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = MaskedMultiheadAttention(dim, dim, heads, dim // heads, dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, q: torch.Tensor, q_mask: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor) -> torch.Tensor:
        return self.norm(q + self.attention(q, kv, kv_mask)) * q_mask.unsqueeze(-1).to(q.dtype)


class EncoderLayer(nn.Module):
    """Self-attention Transformer layer: ``LN(x + MHA(x, x))`` then ``LN(h + FFN(h))``, padding zeroed."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = CrossModalLayer(dim, heads, dropout)  # with the sequence as its own keys
        self.ffn = mlp([dim, 4 * dim, dim], dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.attention(x, mask, x, mask)
        return self.norm(h + self.ffn(h)) * mask.unsqueeze(-1).to(x.dtype)


class TemporalAwareBlock(nn.Module):
    """TAB with regular convolutions: two conv → BN → ReLU → dropout, then ``x · sigmoid(·)``. Input ``(B, D, T)``
    whose padding is zero and at the end, so a conv's zero padding and the sequence's agree."""

    def __init__(self, dim: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, padding=kernel // 2) for _ in range(2))
        self.norms = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(2))
        self.dropout = nn.Dropout1d(dropout)  # Keras SpatialDropout1D: whole channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, D, T), mask (B, 1, T)
        h = x
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = self.dropout(torch.relu(norm(conv(h)))) * mask
        return x * torch.sigmoid(h) * mask


@register
class MulTAB(EmotionModel):
    """Seed 003: per-modality 2-layer self-attention → bidirectional cross-attention → 3 TABs → FC 2 x 768."""

    architecture = "multab"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="whisper", whisper="tiny.en", hop_ms=20.0,
                                                          deltas=False, max_frames=500)
    text_level: ClassVar[Literal["sentence", "token"]] = "token"

    def __init__(self, dims: ModelDims, dim: int = 768, heads: int = 8, layers: int = 2, tab_blocks: int = 3,
                 tab_kernel: int = 3, fc: int = 768, dropout: float = 0.1) -> None:
        if tab_kernel % 2 == 0:
            raise ValueError(f"tab_kernel must be odd (symmetric 'same' padding), not {tab_kernel}")
        super().__init__(dims, dim=dim, heads=heads, layers=layers, tab_blocks=tab_blocks, tab_kernel=tab_kernel,
                         fc=fc, dropout=dropout)
        self.norm = InputNorm(dims.audio_dim)
        self.audio_in = nn.Linear(dims.audio_dim, dim)
        self.text_in = nn.Linear(dims.text_dim, dim)
        self.audio_self = nn.ModuleList(EncoderLayer(dim, heads, dropout) for _ in range(layers))
        self.text_self = nn.ModuleList(EncoderLayer(dim, heads, dropout) for _ in range(layers))
        self.speech_to_text = CrossModalLayer(dim, heads, dropout)  # speech queries text
        self.text_to_speech = CrossModalLayer(dim, heads, dropout)  # text queries speech
        self.tabs = nn.ModuleList(TemporalAwareBlock(dim, tab_kernel, dropout) for _ in range(tab_blocks))
        self.head = mlp([dim, fc, fc, dims.num_classes], dropout)

    @staticmethod
    def _encode(x: torch.Tensor, mask: torch.Tensor, proj: nn.Module, layers: nn.ModuleList) -> torch.Tensor:
        h = proj(x * mask.unsqueeze(-1).to(x.dtype)) * mask.unsqueeze(-1).to(x.dtype)
        for layer in layers:
            h = layer(h, mask)
        return h

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        text_mask = batch.text_mask & batch.has_text.unsqueeze(1)
        audio = self._encode(self.norm(batch.audio, audio_mask), audio_mask, self.audio_in, self.audio_self)
        text = self._encode(batch.text, text_mask, self.text_in, self.text_self)
        audio, text = (self.speech_to_text(audio, audio_mask, text, text_mask),
                       self.text_to_speech(text, text_mask, audio, audio_mask))
        seq, mask = torch.cat([audio, text], dim=1), torch.cat([audio_mask, text_mask], dim=1)
        order = left_align(mask)
        seq, mask = gather_steps(seq, order), mask.gather(1, order)
        h, m = seq.transpose(1, 2), mask.unsqueeze(1).to(seq.dtype)
        for tab in self.tabs:
            h = tab(h, m)
        return self.head(masked_mean(h.transpose(1, 2), mask))  # no modality: zeros in, the bias out
