"""Manifest records → model inputs, with the same collation (models.collate) the stream uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emostream.models.collate import PastUtterance, UtteranceInput, collate
from emostream.models.interface import EmotionModel, ModelDims
from emostream.training.data.records import Utterance


def dialogue_inputs(utts: Sequence[Utterance], sentences: dict[str, torch.Tensor], dims: ModelDims,
                    audio: Sequence[torch.Tensor] | None = None, use_text: bool = True,
                    tokens: dict[str, torch.Tensor] | None = None) -> list[UtteranceInput]:
    """One input per utterance, with the H utterances before it in its dialogue as context (never later ones).

    ``utts`` must be ordered by dialogue and turn, as the loaders return them. ``audio`` gives each
    utterance's frames; without it the audio modality is absent. ``use_text=False`` drops the text. ``tokens``
    (training.cache.text_features) gives each text's token states, for models that read them.
    """
    h = dims.context_size
    no_audio = torch.zeros(2 * dims.audio_dim)
    out: list[UtteranceInput] = []
    past: list[PastUtterance] = []
    for i, u in enumerate(utts):
        if i and utts[i - 1].dialogue != u.dialogue:
            past = []
        sentence = sentences[u.text] if use_text and u.text else None
        token = tokens[u.text] if tokens is not None and sentence is not None else None  # collate casts
        out.append(UtteranceInput(audio=None if audio is None else audio[i], sentence=sentence, tokens=token,
                                  speaker=u.speaker, context=tuple(past[-h:]) if h else ()))
        past.append(PastUtterance(sentence=sentences[u.text] if use_text else torch.zeros(dims.text_dim),
                                  audio_stats=no_audio, speaker=u.speaker))
    return out


def label_array(utts: Sequence[Utterance], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([labels.index(u.label) for u in utts], dtype=np.int64)


@torch.no_grad()
def predict(model: EmotionModel, inputs: Sequence[UtteranceInput], batch_size: int = 256) -> np.ndarray:
    """Fused log-probabilities ``(N, C)`` in eval mode (the modalities present in ``inputs`` decide the fusion).

    Batches are collated on the CPU and run where the model is (dev scoring during training on a GPU)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(inputs), batch_size):
        batch = collate(list(inputs[i : i + batch_size]), model.dims)
        out.append(model(batch.to(device)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def branch_outputs(model: EmotionModel, inputs: Sequence[UtteranceInput],
                   batch_size: int = 256) -> tuple[torch.Tensor, ...]:
    """Each branch's logits ``(N, C)`` before fusion, and which modalities each input has ``(N,)`` (a late-fusion
    model's ``branch_logits``, in eval mode): what any fusion of the two is computed from, without re-running them."""
    was_training = model.training
    model.eval()
    parts = []
    for i in range(0, len(inputs), batch_size):
        batch = collate(list(inputs[i : i + batch_size]), model.dims)
        parts.append((*model.branch_logits(batch), batch.has_audio, batch.has_text))  # type: ignore[operator]
    model.train(was_training)
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))
