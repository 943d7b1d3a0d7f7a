"""Seed 004: the speaker's dialogue history through a Bi-LSTM and multi-head self-attention, an audio BiLSTM encoder.

Why: emotion in conversation depends on what the speaker said just before; the seed paper reads a window of the
speaker's history, encodes every utterance's text, runs a Bi-LSTM over the window (F) and refines it with
H = Norm(F + MultiHead(F)); the audio of the utterance goes through a deep BiLSTM encoder with attention pooling.

=====================================================  ==========================================================
Paper                                                  Code
=====================================================  ==========================================================
per-speaker history window of H utterances             the speaker's last ``window`` utterances among the context
                                                       (``context_same_speaker``), then the current one
RoBERTa utterance embeddings                           MiniLM sentence vectors (``text_level`` "sentence")
Bi-LSTM over the window gives F                        ``text_lstm`` (``text_hidden`` per direction)
H = Norm(F + MultiHead(F))                             ``attention`` + ``layer_norm``, masked to the window
audio: 4 Bi-LSTM layers, 4 linear layers,              ``blstm`` (``lstm_layers`` 4), ``audio_linear``
attention-weighted average                             (:func:`mlp`, 4 layers), :class:`AttentionPool`
audio frame features                                   Whisper tiny.en encoder states (FeatureSpec kind "whisper")
optional visual branch                                 ``visual_dim`` > 0 (off: no camera)
=====================================================  ==========================================================

Departures and why: the audio front end is not in the description this module follows; the strongest packaged one
stands in (it was MFCC + deltas before). RoBERTa cannot be loaded offline; the packaged encoder's sentence vector
stands in for its utterance embedding (past utterances are kept as sentence vectors only, so token states could
not be had for them). Streaming sees the past only: the window ends with the current utterance and is taken from
the ``context_size`` previous utterances of the dialogue that the batch carries (the config keeps 32, all of a
MELD dialogue's past). Audio enters for the current utterance only, joined to its row of H: the batch carries only
frame statistics of past utterances (none at all in label-matched training), which the paper's audio encoder
cannot read. H (``window`` 4) and the layer widths (128 per LSTM direction, 256 for the linear layers, 4 heads)
are not in the description this module follows. With ``visual_dim > 0`` the batch must carry ``visual``
``(B, visual_dim)`` and ``has_visual`` ``(B,)``, e.g. a dataclass extending :class:`EmotionBatch`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import AttentionPool, MaskedBiRNN, MaskedMultiheadAttention, mlp, present
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


@register
class DialogueBiLSTMMHA(EmotionModel):
    """Seed 004: [speaker window → Bi-LSTM → LN(F + MHA(F)), current row ‖ 4-layer BiLSTM audio (‖ visual)] → FC."""

    architecture = "dialogue_bilstm_mha"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="whisper", whisper="tiny.en", hop_ms=20.0,
                                                          deltas=False, max_frames=500)
    text_level: ClassVar[Literal["sentence", "token"]] = "sentence"

    def __init__(self, dims: ModelDims, window: int = 4, lstm_hidden: int = 128, lstm_layers: int = 4,
                 linear_layers: int = 4, text_hidden: int = 128, heads: int = 4, visual_dim: int = 0,
                 visual_hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__(dims, window=window, lstm_hidden=lstm_hidden, lstm_layers=lstm_layers,
                         linear_layers=linear_layers, text_hidden=text_hidden, heads=heads, visual_dim=visual_dim,
                         visual_hidden=visual_hidden, dropout=dropout)
        self.window = window
        audio_out, text_out = 2 * lstm_hidden, 2 * text_hidden
        self.norm = InputNorm(dims.audio_dim)
        self.blstm = MaskedBiRNN(dims.audio_dim, lstm_hidden, lstm_layers, "lstm", dropout)
        self.audio_linear = mlp([audio_out] * (linear_layers + 1), dropout)
        self.audio_attention = AttentionPool(audio_out)
        self.text_lstm = MaskedBiRNN(dims.text_dim, text_hidden)
        self.attention = MaskedMultiheadAttention(text_out, text_out, heads, text_out // heads, dropout)
        self.layer_norm = nn.LayerNorm(text_out)
        self.visual = nn.Sequential(nn.Linear(visual_dim, visual_hidden), nn.GELU()) if visual_dim else None
        width = audio_out + text_out + (visual_hidden if visual_dim else 0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, dims.num_classes))

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        frames = self.blstm(self.norm(batch.audio, audio_mask), audio_mask)
        frames = self.audio_linear(frames) * audio_mask.unsqueeze(-1).to(frames.dtype)
        audio = self.audio_attention(frames, audio_mask)
        # The speaker's window: their last `window` past utterances among the context, then the current one.
        past = batch.context_mask & batch.context_same_speaker
        past = past & (past.flip(1).cumsum(1).flip(1) <= self.window)  # count from the newest back
        own = torch.cat([past, torch.ones_like(past[:, :1])], dim=1) & batch.has_text.unsqueeze(1)  # no words: none
        f = self.text_lstm(torch.cat([batch.context, batch.sentence.unsqueeze(1)], dim=1), own)
        h = self.layer_norm(f + self.attention(f, f, own))  # H = Norm(F + MultiHead(F))
        parts = [present(audio, batch.has_audio), present(h[:, -1], batch.has_text)]
        if self.visual is not None:
            parts.append(present(self.visual(batch.visual), batch.has_visual))  # type: ignore[attr-defined]
        return self.head(torch.cat(parts, dim=-1))
