"""Seed 004: utterance encoders, then multi-head self-attention with a residual over the dialogue.

Why: emotion in conversation depends on what was said just before; the seed paper encodes every utterance
(audio through BiLSTM layers with attention pooling, text embeddings, optionally video), stacks the
utterances of the dialogue as F and refines them with H = Norm(F + MultiHead(F)) before classifying.

Adaptations: streaming sees the past only, so the dialogue is the H previous utterances plus the current one,
which is classified. The batch carries only mean and standard deviation of past utterances' frames, so
every utterance's audio vector includes a projection of those statistics and the current one adds its
BiLSTM encoding. MiniLM sentence embeddings stand in for the paper's text encoder. The visual branch is
off by default (no camera); with ``visual_dim > 0`` the batch must carry ``visual`` ``(B, visual_dim)`` and
``has_visual`` ``(B,)``, e.g. a dataclass extending :class:`EmotionBatch`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import (
    AttentionPool,
    MaskedBiRNN,
    MaskedMultiheadAttention,
    masked_mean,
    masked_std,
    present,
)
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


@register
class DialogueBiLSTMMHA(EmotionModel):
    """Seed 004: [BiLSTM-attention audio ‖ text (‖ visual)] per utterance → LN(F + MHA(F)) → FC on the current."""

    architecture = "dialogue_bilstm_mha"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="mfcc", n_mfcc=40, deltas=True)
    text_level: ClassVar[Literal["sentence", "token"]] = "sentence"

    def __init__(self, dims: ModelDims, lstm_hidden: int = 128, lstm_layers: int = 2, text_hidden: int = 256,
                 heads: int = 4, visual_dim: int = 0, visual_hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__(dims, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers, text_hidden=text_hidden,
                         heads=heads, visual_dim=visual_dim, visual_hidden=visual_hidden, dropout=dropout)
        audio_out = 2 * lstm_hidden
        self.norm = InputNorm(dims.audio_dim)
        self.blstm = MaskedBiRNN(dims.audio_dim, lstm_hidden, lstm_layers, "lstm", dropout)
        self.audio_attention = AttentionPool(audio_out)
        self.audio_stats = nn.Linear(2 * dims.audio_dim, audio_out)
        self.text = nn.Sequential(nn.Linear(dims.text_dim, text_hidden), nn.GELU())
        self.visual = nn.Sequential(nn.Linear(visual_dim, visual_hidden), nn.GELU()) if visual_dim else None
        width = audio_out + text_hidden + (visual_hidden if visual_dim else 0)
        self.position = nn.Parameter(torch.zeros(dims.context_size + 1, width))  # slot H is the current utterance
        self.speaker = nn.Embedding(2, width)  # other speaker / same speaker as the current utterance
        self.attention = MaskedMultiheadAttention(width, width, heads, width // heads, dropout)
        self.layer_norm = nn.LayerNorm(width)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, dims.num_classes))

    def _stats(self, stats: torch.Tensor) -> torch.Tensor:
        """Raw per-utterance [mean, std] of frames, standardised with the corpus statistics of :class:`InputNorm`."""
        d = self.dims.audio_dim
        return torch.cat([(stats[..., :d] - self.norm.mean) / self.norm.std, stats[..., d:] / self.norm.std], -1)

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        b, h = batch.context.shape[:2]
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        frames = self.norm(batch.audio, audio_mask)
        current_audio = self.audio_attention(self.blstm(frames, audio_mask), audio_mask)
        current_audio = current_audio + self.audio_stats(self._stats(
            torch.cat([masked_mean(batch.audio, audio_mask), masked_std(batch.audio, audio_mask)], dim=-1)))
        past_audio = self.audio_stats(self._stats(batch.context_audio))  # (B, H, A)
        audio = torch.cat([past_audio, current_audio.unsqueeze(1)], dim=1)
        text = self.text(torch.cat([batch.context, batch.sentence.unsqueeze(1)], dim=1))
        # The current-utterance masks also gate the past: with has_text False the model uses no text at all.
        parts = [present(audio, batch.has_audio), present(text, batch.has_text)]
        if self.visual is not None:
            visual = present(self.visual(batch.visual), batch.has_visual)  # type: ignore[attr-defined]
            parts.append(torch.cat([torch.zeros(b, h, visual.shape[-1], dtype=visual.dtype, device=visual.device),
                                    visual.unsqueeze(1)], dim=1))  # no visual context for past utterances
        same = torch.cat([batch.context_same_speaker, torch.ones_like(batch.has_text).unsqueeze(1)], dim=1)
        valid = torch.cat([batch.context_mask, torch.ones_like(batch.has_text).unsqueeze(1)], dim=1)
        f = torch.cat(parts, dim=-1) + self.position + self.speaker(same.long())
        f = f * valid.unsqueeze(-1).to(f.dtype)
        out = self.layer_norm(f + self.attention(f, f, valid))  # H = Norm(F + MultiHead(F))
        return self.head(out[:, -1])
