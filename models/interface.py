"""The one interface every architecture implements: a batch of utterances in, logits over labels out."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class ModelDims:
    """Input and output sizes fixed by the bundle's feature spec, text encoder and label set."""

    num_classes: int
    audio_dim: int  # acoustic feature size per frame
    text_dim: int  # text embedding size (token states or sentence vector)
    context_size: int  # H: how many past utterances of the dialogue the model sees


@dataclass
class EmotionBatch:
    """A batch of B utterances. Masks are bool; a False ``has_*`` entry means that modality is missing
    (ASR heard no words, or the audio is unusable) and the model must not use it.

    ``context_*`` hold the H previous utterances of the same dialogue, past only, right-aligned: slot
    H-1 is the utterance just before this one; ``context_mask`` is False for slots before the dialogue
    started.
    """

    audio: torch.Tensor  # (B, T, audio_dim) frame features
    audio_mask: torch.Tensor  # (B, T)
    text: torch.Tensor  # (B, L, text_dim) token states, or L = 1 for a sentence vector
    text_mask: torch.Tensor  # (B, L)
    sentence: torch.Tensor  # (B, text_dim) pooled sentence embedding of the utterance
    context: torch.Tensor  # (B, H, text_dim) sentence embeddings of past utterances
    context_audio: torch.Tensor  # (B, H, 2 * audio_dim) mean and std of past utterances' frames
    context_mask: torch.Tensor  # (B, H)
    context_same_speaker: torch.Tensor  # (B, H) True where the past utterance has the current speaker
    has_audio: torch.Tensor  # (B,)
    has_text: torch.Tensor  # (B,)

    def to(self, device: torch.device | str) -> EmotionBatch:
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})

    def __len__(self) -> int:
        return self.audio.shape[0]

    def rows(self, index: torch.Tensor) -> EmotionBatch:
        """The utterances at ``index`` (a 1-d index tensor), as a batch of their own."""
        return EmotionBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_modalities(self, audio: bool, text: bool) -> EmotionBatch:
        """The same batch with a modality switched off (used for per-modality scores)."""
        return replace(self, has_audio=self.has_audio & audio, has_text=self.has_text & text)


class EmotionModel(nn.Module):
    """Base class: subclasses set ``architecture`` and implement :meth:`forward`.

    ``hparams`` are the architecture's own keyword arguments; together with ``dims`` they rebuild the
    module exactly, which is what a bundle stores.
    """

    architecture: ClassVar[str]

    def __init__(self, dims: ModelDims, **hparams: Any) -> None:
        super().__init__()
        self.dims = dims
        self.hparams = hparams

    def forward(self, batch: EmotionBatch) -> torch.Tensor:  # (B, num_classes) logits
        raise NotImplementedError

    def upgrade_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights saved by an earlier layout of this architecture, renamed to today's (a bundle loads them through
        this); unchanged by default."""
        return state

    def modality_logits(self, batch: EmotionBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits fused, of the audio alone and of the text alone, per row; a row without both modalities gets the
        fused logits three times (they are then its one modality's). Here the model runs again on the rows that
        have both, once per modality; an architecture whose fused output is made from its branches' outputs
        overrides this with one pass."""
        fused = self(batch)
        audio, text = fused.clone(), fused.clone()
        both = (batch.has_audio & batch.has_text).nonzero().squeeze(1)
        if len(both):
            subset = batch.rows(both)
            audio[both] = self(subset.with_modalities(audio=True, text=False))
            text[both] = self(subset.with_modalities(audio=False, text=True))
        return fused, audio, text


def drop_modalities(batch: EmotionBatch, p: float, generator: torch.Generator | None = None) -> EmotionBatch:
    """Modality dropout for training: each present modality is dropped with probability ``p``, never both."""
    b = len(batch)
    u = torch.rand(b, generator=generator, device="cpu").to(batch.has_audio.device)
    drop_audio = (u < p) & batch.has_text
    drop_text = (u >= 1 - p) & batch.has_audio & ~drop_audio
    return replace(batch, has_audio=batch.has_audio & ~drop_audio, has_text=batch.has_text & ~drop_text)


_REGISTRY: dict[str, type[EmotionModel]] = {}


def register(cls: type[EmotionModel]) -> type[EmotionModel]:
    """Class decorator: makes an architecture buildable by name from a bundle or a config."""
    _REGISTRY[cls.architecture] = cls
    return cls


def architectures() -> dict[str, type[EmotionModel]]:
    from emostream.models import zoo  # noqa: F401  (importing registers every architecture)

    return dict(_REGISTRY)


def build_model(architecture: str, dims: ModelDims, hparams: dict[str, Any]) -> EmotionModel:
    known = architectures()
    if architecture not in known:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(known))}")
    return known[architecture](dims, **hparams)


