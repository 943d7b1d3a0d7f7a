"""What a stage may call on a shared service, whatever runs it: models in this process (``runtime.py``, in worker
threads: ``threaded.py``) or Ray Serve deployments on a cluster (``stream/cluster/services.py``). Stages are typed
against these only. Every call is awaited: where and how the work runs is the service's business."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from emostream.models.collate import UtteranceInput
from emostream.models.text_encoder import TextEncoderSpec, TextEncoding
from emostream.stream.messages import Transcript
from emostream.stream.services.inference import Scores


class Asr(Protocol):
    async def transcribe(self, audio: np.ndarray, priority: int) -> Transcript:
        """16 kHz mono audio → its transcript; a lower ``priority`` goes first (finals before partials)."""

    async def close(self) -> None: ...


class Classifier(Protocol):
    async def classify(self, item: UtteranceInput) -> Scores: ...

    async def close(self) -> None: ...


class FeatureExtractor(Protocol):
    async def extract(self, waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Waveforms → ``(B, T, dim)`` feature frames and their ``(B, T)`` mask, on the CPU."""


class OnePass(Protocol):
    """One utterance's Whisper encoder pass, started once and read by two stages at their own times: the features
    stage takes the bundle's frames, the transcription stage the final transcript (issue 16)."""

    async def frames(self) -> torch.Tensor:
        """``(T, dim)`` float32 on the CPU: the bundle's feature frames of the utterance."""

    async def transcript(self) -> Transcript: ...


@runtime_checkable  # the wiring (pipeline.py) tells it from a FeatureExtractor
class SharedEncoder(Protocol):
    """The ASR's encoder when its states are the bundle's features (``shared_states.why_not_shared``): in place of
    a :class:`FeatureExtractor`, one pass per utterance serves both the features and the final decode."""

    def start(self, audio: np.ndarray) -> OnePass:
        """Starts the pass of ``audio`` (16 kHz mono) now, on the running event loop."""


class SentenceEncoder(Protocol):
    spec: TextEncoderSpec

    async def encode(self, texts: list[str]) -> TextEncoding:
        """Each text's sentence vector and token states, on the CPU."""
