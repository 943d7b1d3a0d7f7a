"""The shared models as Ray Serve deployments, one per service: each replica loads its model once and answers
requests of every call, micro-batched across calls and ingress replicas with ``@serve.batch``.

Batch sizes and waits come from the config at start (``cluster.<name>.max_batch`` / ``max_wait_ms``); replica
counts and resources are applied by ``application.py``. A replica uses one torch thread, as in one process:
parallelism comes from replicas, not from threads fighting over the same cores.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import torch
from ray import serve

from emostream.models.bundle import load_bundle
from emostream.models.collate import UtteranceInput
from emostream.models.features import make_extractor
from emostream.models.text_encoder import TextEncoder, TextEncoding
from emostream.stream.config import Config, DeploymentConfig
from emostream.stream.messages import Transcript
from emostream.stream.services.asr import AsrService, Transcriber
from emostream.stream.services.device import resolve_device
from emostream.stream.services.inference import EmotionClassifier, Scores
from emostream.stream.services.runtime import bundle_path


def _prepare(batched: Any, batch: DeploymentConfig) -> None:
    """One torch thread per replica, and the batch settings of the config on the ``@serve.batch`` method."""
    torch.set_num_threads(1)
    batched.set_max_batch_size(batch.max_batch)
    batched.set_batch_wait_timeout_s(batch.max_wait_ms / 1000)


@serve.deployment
class AsrModel:
    """Whisper for every call, through the single-process ``AsrService``: a batch gathered by Ray Serve from
    all ingress replicas goes to its engine at once, which decodes it finals first, in CTranslate2 batches."""

    def __init__(self, cfg: Config) -> None:
        _prepare(self.transcribe, cfg.cluster.asr)
        self.service = AsrService(Transcriber(cfg.asr, resolve_device(cfg.model.device)), cfg.asr.max_batch)

    @serve.batch
    async def transcribe(self, audios: list[np.ndarray], priorities: list[int]) -> list[Transcript]:
        return list(await asyncio.gather(*(self.service.transcribe(a, p) for a, p in zip(audios, priorities,
                                                                                          strict=True))))


@serve.deployment
class FeaturesModel:
    """The bundle's acoustic front end (Whisper encoder states for the shipped bundle)."""

    def __init__(self, cfg: Config) -> None:
        _prepare(self.extract, cfg.cluster.features)
        device = resolve_device(cfg.model.device)
        self.extractor = make_extractor(load_bundle(bundle_path(cfg), "cpu").meta.features, device)

    @serve.batch
    async def extract(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        feats, mask = await asyncio.to_thread(self.extractor, waves)
        return [feats[i, : int(mask[i].sum())].cpu() for i in range(len(waves))]


@serve.deployment
class TextModel:
    """The bundle's text encoder: one transcript per request, the rows of a batch split apart again."""

    def __init__(self, cfg: Config) -> None:
        _prepare(self.encode, cfg.cluster.text)
        spec = load_bundle(bundle_path(cfg), "cpu").meta.text_encoder
        self.encoder = TextEncoder(spec, resolve_device(cfg.model.device))

    @serve.batch
    async def encode(self, texts: list[str]) -> list[TextEncoding]:
        enc = await asyncio.to_thread(self.encoder.encode, texts)
        out = []
        for i in range(len(texts)):
            n = int(enc.mask[i].sum())
            out.append(TextEncoding(enc.sentence[i : i + 1].cpu(), enc.tokens[i : i + 1, :n].cpu(),
                                    enc.mask[i : i + 1, :n].cpu()))
        return out


@serve.deployment
class InferenceModel:
    """The fusion model: a batch is one forward pass whatever the calls it came from."""

    def __init__(self, cfg: Config) -> None:
        _prepare(self.classify, cfg.cluster.inference)
        device = resolve_device(cfg.model.device)
        self.classifier = EmotionClassifier(load_bundle(bundle_path(cfg), device), device)

    @serve.batch
    async def classify(self, items: list[UtteranceInput]) -> list[Scores]:
        return await asyncio.to_thread(self.classifier.classify, items)
