"""Model inputs of manifest records (your own data, training/data/manifest.py), for training and for scoring."""

from __future__ import annotations

from pathlib import Path

import torch

from emostream.models.collate import UtteranceInput
from emostream.models.features import FeatureSpec
from emostream.models.interface import ModelDims
from emostream.models.speaker_norm import SpeakerPrior
from emostream.models.text_encoder import TextEncoderSpec
from emostream.models.whisper_states import Precision
from emostream.stream.stages.vad import VadConfig
from emostream.training.batching import dialogue_inputs
from emostream.training.cache import audio_frames, text_features
from emostream.training.config import TrainConfig
from emostream.training.data.records import Utterance
from emostream.training.speaker_frames import heard_frames, steady_frames


def manifest_frames(utts: list[Utterance], features: FeatureSpec, vad: VadConfig, cache_dir: Path,
                    precision: Precision = "float32") -> tuple[list[Utterance], list[torch.Tensor]]:
    """The rows that have audio, and their raw frames."""
    with_audio = [u for u in utts if u.audio is not None]
    return with_audio, audio_frames([u.audio for u in with_audio], features, vad, cache_dir,  # type: ignore[misc]
                                    precision=precision)


def manifest_inputs(utts: list[Utterance], cfg: TrainConfig, cache_dir: Path,
                    encoder: TextEncoderSpec | None = None, features: FeatureSpec | None = None,
                    vad: VadConfig | None = None, dims: ModelDims | None = None,
                    speaker_norm: tuple[SpeakerPrior, bool] | None = None,
                    precision: Precision = "float32") -> list[UtteranceInput]:
    """Model inputs of manifest records: real audio and text of the same utterance where the row has both, and
    past-only context from the row's dialogue. ``speaker_norm``: the prior and whether these are training rows
    (steady-state statistics) rather than scored ones (running statistics in the manifest's order)."""
    features, vad, dims = features or cfg.features, vad or cfg.vad, dims or cfg.dims()
    with_audio, computed = manifest_frames(utts, features, vad, cache_dir, precision)
    if speaker_norm is not None:
        prior, training = speaker_norm
        computed = steady_frames(computed, with_audio, prior) if training else \
            heard_frames(computed, with_audio, prior, shuffle=False)
    by_row = {id(u): f for u, f in zip(with_audio, computed, strict=True)}
    frames = [by_row.get(id(u)) for u in utts]
    texts, encoder = [u.text for u in utts], encoder or cfg.text_encoder
    sentences, tokens = text_features(texts, encoder, cache_dir)
    return dialogue_inputs(utts, sentences, dims, audio=frames, tokens=tokens)  # type: ignore[arg-type]
