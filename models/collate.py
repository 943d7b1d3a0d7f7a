"""Per-utterance model inputs and their collation into an :class:`EmotionBatch` (training and serving alike)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from emostream.models.interface import EmotionBatch, ModelDims


@dataclass(frozen=True)
class PastUtterance:
    """What the context buffer keeps of an earlier utterance of the dialogue."""

    sentence: torch.Tensor  # (text_dim,) sentence embedding; zeros if it had no words
    audio_stats: torch.Tensor  # (2 * audio_dim,) mean and std of its raw frames
    speaker: str


@dataclass(frozen=True)
class UtteranceInput:
    """One utterance ready for a model. ``None`` marks a missing modality."""

    audio: torch.Tensor | None  # (T, audio_dim) raw feature frames
    sentence: torch.Tensor | None  # (text_dim,)
    tokens: torch.Tensor | None  # (L, text_dim); None → the sentence vector stands in (L = 1)
    speaker: str = ""
    context: tuple[PastUtterance, ...] = field(default_factory=tuple)  # oldest first, at most H


def collate(items: list[UtteranceInput], dims: ModelDims) -> EmotionBatch:
    """Pads and stacks utterances. Context is right-aligned to H slots (the newest in slot H-1)."""
    b, h = len(items), dims.context_size
    t_max = max((len(i.audio) for i in items if i.audio is not None), default=1)
    l_max = max((len(i.tokens) if i.tokens is not None else 1 for i in items), default=1)
    audio = torch.zeros(b, max(t_max, 1), dims.audio_dim)
    audio_mask = torch.zeros(b, max(t_max, 1), dtype=torch.bool)
    text = torch.zeros(b, l_max, dims.text_dim)
    text_mask = torch.zeros(b, l_max, dtype=torch.bool)
    sentence = torch.zeros(b, dims.text_dim)
    context = torch.zeros(b, h, dims.text_dim)
    context_audio = torch.zeros(b, h, 2 * dims.audio_dim)
    context_mask = torch.zeros(b, h, dtype=torch.bool)
    same = torch.zeros(b, h, dtype=torch.bool)
    has_audio = torch.zeros(b, dtype=torch.bool)
    has_text = torch.zeros(b, dtype=torch.bool)
    for i, item in enumerate(items):
        if item.audio is not None and len(item.audio):
            audio[i, : len(item.audio)] = item.audio
            audio_mask[i, : len(item.audio)] = True
            has_audio[i] = True
        if item.sentence is not None:
            sentence[i] = item.sentence
            tokens = item.tokens if item.tokens is not None else item.sentence.unsqueeze(0)
            text[i, : len(tokens)] = tokens
            text_mask[i, : len(tokens)] = True
            has_text[i] = True
        past = item.context[-h:] if h else ()
        for j, p in enumerate(past, start=h - len(past)):
            context[i, j] = p.sentence
            context_audio[i, j] = p.audio_stats
            context_mask[i, j] = True
            same[i, j] = p.speaker == item.speaker
    return EmotionBatch(audio=audio, audio_mask=audio_mask, text=text, text_mask=text_mask, sentence=sentence,
                        context=context, context_audio=context_audio, context_mask=context_mask,
                        context_same_speaker=same, has_audio=has_audio, has_text=has_text)
