"""Seed 001: CBLA (CNN + BiLSTM with attention) on low-level descriptors, Bi-LSTM on text, dense DNN.

Why: the two audio channels see different things: stacked 1-D convolutions with max pooling pick local
spectral patterns, the attention BiLSTM their course over the utterance; the seed paper joins both in CBLA's
own dense layer, concatenates that with a text Bi-LSTM at feature level and classifies with a dense
1024-512-C network under L2 regularisation.

==================================================  =============================================================
Paper                                               Code
==================================================  =============================================================
34 pyAudioAnalysis descriptors, 50 ms / 25 ms       FeatureSpec kind "lld" (computed in torch, features.py)
CNN channel: conv → BN → ReLU → max pool layers     :class:`MaskedConvStack` (64-128-128-256), global average
BiLSTM channel with attention                       ``audio_lstm`` (256) + :class:`AttentionPool`
CBLA's dense layer over [CNN ‖ BiLSTM-attention]    ``audio_dense`` (Linear → ReLU → dropout)
text Bi-LSTM 256 on word embeddings                 ``text_lstm`` (``text_hidden`` 256), final states
feature-level concatenation, dense 1024-512-C       ``dnn``; L2 on its weights: :meth:`CBLABiLSTM.regularization`
==================================================  =============================================================

Departures and why: the paper's word embeddings cannot be loaded offline, so the packaged encoder's token
states stand in. The paper cut every utterance to 100 frames; here any length is taken and padding is masked.
The size of CBLA's dense layer is not in the description this module follows; ``audio_dense`` 256 is an
assumption. The L2 term is exposed as :meth:`CBLABiLSTM.regularization` for the training loop to add to the
loss (the interface has no hook for it).
"""

from __future__ import annotations

import itertools
from typing import ClassVar, Literal

import torch
from torch import nn

from emostream.models.blocks import AttentionPool, MaskedBiRNN, final_states, masked_mean, pool_mask, present
from emostream.models.features import FeatureSpec, InputNorm
from emostream.models.interface import EmotionBatch, EmotionModel, ModelDims, register


class MaskedConvStack(nn.Module):
    """1-D conv → BN → ReLU → max-pool(2) layers over ``(B, T, D)`` with padding zeroed after every layer.

    Values after ReLU are ≥ 0, so zeroed padding never wins a max pool: valid steps do not depend on it.
    """

    def __init__(self, in_dim: int, channels: tuple[int, ...], kernel: int = 3) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.BatchNorm1d(c_out), nn.ReLU())
            for c_in, c_out in zip((in_dim, *channels[:-1]), channels, strict=True))
        self.pool = nn.MaxPool1d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.transpose(1, 2)
        for layer in self.layers:
            h = self.pool(layer(h) * mask.unsqueeze(1).to(h.dtype))
            mask = pool_mask(mask, 2)
        return h.transpose(1, 2), mask


@register
class CBLABiLSTM(EmotionModel):
    """Seed 001: CBLA ([conv ‖ attention-BiLSTM] → dense) on audio LLDs, BiLSTM on tokens, dense 1024-512-C."""

    architecture = "cbla_bilstm"
    default_features: ClassVar[FeatureSpec] = FeatureSpec(kind="lld", win_ms=50.0, hop_ms=25.0, n_mels=40,
                                                          deltas=False, max_frames=400)
    text_level: ClassVar[Literal["sentence", "token"]] = "token"

    def __init__(self, dims: ModelDims, conv_channels: tuple[int, ...] = (64, 128, 128, 256), audio_hidden: int = 256,
                 audio_dense: int = 256, text_hidden: int = 256, dense: tuple[int, ...] = (1024, 512),
                 dropout: float = 0.3, l2: float = 1e-4) -> None:
        conv_channels, dense = tuple(conv_channels), tuple(dense)  # lists after a JSON round trip
        super().__init__(dims, conv_channels=list(conv_channels), audio_hidden=audio_hidden, audio_dense=audio_dense,
                         text_hidden=text_hidden, dense=list(dense), dropout=dropout, l2=l2)
        self.l2 = l2
        self.norm = InputNorm(dims.audio_dim)
        self.conv = MaskedConvStack(dims.audio_dim, conv_channels)
        self.audio_lstm = MaskedBiRNN(dims.audio_dim, audio_hidden)
        self.audio_attention = AttentionPool(2 * audio_hidden)
        self.audio_dense = nn.Sequential(nn.Linear(conv_channels[-1] + 2 * audio_hidden, audio_dense), nn.ReLU(),
                                         nn.Dropout(dropout))
        self.text_lstm = MaskedBiRNN(dims.text_dim, text_hidden)
        sizes = (audio_dense + 2 * text_hidden, *dense)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.dnn = nn.Sequential(*layers, nn.Linear(sizes[-1], dims.num_classes))

    def regularization(self) -> torch.Tensor:
        """L2 penalty of the dense layers' weights (``l2 · Σ w²``), to add to the training loss."""
        return self.l2 * sum(m.weight.pow(2).sum() for m in self.dnn if isinstance(m, nn.Linear))

    def forward(self, batch: EmotionBatch) -> torch.Tensor:
        audio_mask = batch.audio_mask & batch.has_audio.unsqueeze(1)
        text_mask = batch.text_mask & batch.has_text.unsqueeze(1)
        frames = self.norm(batch.audio, audio_mask)
        conv, conv_mask = self.conv(frames, audio_mask)
        conv = masked_mean(conv, conv_mask)  # global average pooling over the valid steps
        lstm = self.audio_attention(self.audio_lstm(frames, audio_mask), audio_mask)
        audio = self.audio_dense(torch.cat([conv, lstm], dim=-1))
        text = final_states(self.text_lstm(batch.text, text_mask), text_mask)
        features = torch.cat([present(audio, batch.has_audio), present(text, batch.has_text)], dim=-1)
        return self.dnn(features)
