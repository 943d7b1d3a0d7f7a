"""Building blocks shared by the architectures."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of ``(B, T, D)`` where ``mask`` ``(B, T)`` is True; zeros where nothing is valid."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_std(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    mean = masked_mean(x, mask)
    return (((x - mean.unsqueeze(1)) ** 2 * m).sum(1) / m.sum(1).clamp(min=1.0)).clamp(min=1e-8).sqrt()


def mlp(dims: list[int], dropout: float) -> nn.Sequential:
    """Linear → GELU → dropout between every pair of sizes, plain linear at the end."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers += [nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def fuse_log_probs(
    audio_logits: torch.Tensor, text_logits: torch.Tensor, has_audio: torch.Tensor, has_text: torch.Tensor,
    audio_weight: float | torch.Tensor,
) -> torch.Tensor:
    """Weighted product of experts over the modalities present; uniform when none is.

    A missing modality gets weight zero, so its (meaningless) logits cannot move the result.
    """
    wa = has_audio.to(audio_logits.dtype) * audio_weight
    wt = has_text.to(text_logits.dtype) * (1 - audio_weight)
    la = torch.log_softmax(audio_logits, dim=-1)
    lt = torch.log_softmax(text_logits, dim=-1)
    total = (wa + wt).clamp(min=1e-6).unsqueeze(-1)
    return (wa.unsqueeze(-1) * la + wt.unsqueeze(-1) * lt) / total
