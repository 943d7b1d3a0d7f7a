"""The shared models as Ray Serve deployments, one per service: each replica loads its model once and answers
requests of every call, micro-batched across calls and ingress replicas with ``@serve.batch``.

When the bundle's features are the ASR's encoder states (``why_not_shared``, as in one process), there is no
features deployment: the ASR replica answers each utterance's final with one encode for both its transcript and
its frames (``AsrModel.one_pass``), one request where the features would be another, with an encoder of its own.

Batch sizes and waits come from the config at start (``cluster.<name>.max_batch`` / ``max_wait_ms``); replica
counts and resources are applied by ``application.py``. A replica uses one torch thread, as in one process:
parallelism comes from replicas, not from threads fighting over the same cores.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import numpy as np
import torch
from ray import serve

from emostream.models.bundle import load_bundle, read_meta
from emostream.models.collate import UtteranceInput
from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.text_encoder import TextEncoder, TextEncoding
from emostream.stream.cluster.wire import from_wire, to_wire
from emostream.stream.config import Config, DeploymentConfig
from emostream.stream.messages import Transcript
from emostream.stream.services.asr import FINAL, AsrService, Transcriber
from emostream.stream.services.device import resolve_device
from emostream.stream.services.inference import EmotionClassifier, Scores
from emostream.stream.services.interface import OnePass
from emostream.stream.services.runtime import bundle_path
from emostream.stream.services.shared_states import SharedStates, why_not_shared
from emostream.stream.services.thread_pools import quiet_thread_pools


def replica_device(cfg: Config, d: DeploymentConfig) -> str:
    """``model.device`` for a replica of ``d``: ``auto`` is the GPU when the replica reserves one (``num_gpus``),
    else the CPU. Ray leaves every GPU of a node visible to a replica that reserved none; using one would take
    it from the replicas that did, and would make the replica's model depend on the node it landed on."""
    if cfg.model.device != "auto":
        return cfg.model.device
    return "cuda" if d.num_gpus > 0 else "cpu"


def why_features_not_shared(cfg: Config, spec: FeatureSpec) -> str:
    """``why_not_shared`` for the ASR replicas, from the config and the bundle's ``spec`` alone, so that the
    driver (which deploys ``features`` only when it is needed) and every ASR replica come to the same answer."""
    device = torch.device(replica_device(cfg, cfg.cluster.asr))
    return why_not_shared(spec, cfg.asr.resolved(device.type), cfg.vad, device)


def _prepare(batch: DeploymentConfig, *batched: Any) -> None:
    """The replica's thread pools kept quiet (``quiet_thread_pools``), and the batch settings of the config on each
    ``@serve.batch`` method."""
    quiet_thread_pools()
    for method in batched:
        method.set_max_batch_size(batch.max_batch)
        method.set_batch_wait_timeout_s(batch.max_wait_ms / 1000)


@serve.deployment
class AsrModel:
    """Whisper for every call, through the single-process ``AsrService``: a batch gathered by Ray Serve from
    all ingress replicas goes to its engine at once, which decodes it finals first, in CTranslate2 batches."""

    def __init__(self, cfg: Config) -> None:
        _prepare(cfg.cluster.asr, self.transcribe, self.one_pass)
        device = resolve_device(replica_device(cfg, cfg.cluster.asr))
        # A decode's threads: at most the CPUs the replica reserved (Ray does not pin it to them).
        asr = cfg.asr.resolved(device.type, cores=math.ceil(cfg.cluster.asr.num_cpus))
        self.service = AsrService(Transcriber(asr, device), cfg.asr.max_batch)
        spec = read_meta(bundle_path(cfg)).features
        self.unshared = why_features_not_shared(cfg, spec)
        self.states = None if self.unshared else SharedStates(self.service)
        self.passes: Counter[str] = Counter()  # encoder passes, "final" and "partial" (encoder_passes)

    @serve.batch
    async def transcribe(self, audios: list[np.ndarray], priorities: list[int]) -> list[Transcript]:
        self.passes.update("final" if p == FINAL else "partial" for p in priorities)
        return list(await asyncio.gather(*(self.service.transcribe(a, p) for a, p in zip(audios, priorities,
                                                                                          strict=True))))

    @serve.batch
    async def one_pass(self, audios: list[np.ndarray]) -> list[tuple[Transcript, np.ndarray]]:
        """Each utterance's final transcript and the bundle's ``(T, dim)`` frames, from one encode of it."""
        if self.states is None:  # only when nodes disagree on the config or the bundle
            raise RuntimeError(f"this asr replica does not share its encodes ({self.unshared})")
        self.passes["final"] += len(audios)
        # Copies: Ray hands over read-only arrays.
        return list(await asyncio.gather(*(_both(self.states.start(a.copy())) for a in audios)))

    async def encoder_passes(self) -> dict[str, int]:
        """Encoder passes this replica made, by kind: with ``one_pass`` a final costs one, features included."""
        return dict(self.passes)


async def _both(one: OnePass) -> tuple[Transcript, np.ndarray]:
    frames, transcript = await asyncio.gather(one.frames(), one.transcript())
    return to_wire((transcript, frames))


@serve.deployment
class FeaturesModel:
    """The bundle's acoustic front end (Whisper encoder states for the shipped bundle)."""

    def __init__(self, cfg: Config) -> None:
        _prepare(cfg.cluster.features, self.extract)
        device = resolve_device(replica_device(cfg, cfg.cluster.features))
        # The functionals are appended beside each call, as the utterance is spoken (stream/stages/functionals.py).
        self.extractor = make_extractor(read_meta(bundle_path(cfg)).features, device, with_functionals=False,
                                        precision=cfg.model.resolved_precision(device))

    @serve.batch
    async def extract(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        feats, mask = await asyncio.to_thread(self.extractor, list(from_wire(tuple(waves))))
        return [to_wire(feats[i, : int(mask[i].sum())]) for i in range(len(waves))]


@serve.deployment
class TextModel:
    """The bundle's text encoder: one transcript per request, the rows of a batch split apart again."""

    def __init__(self, cfg: Config) -> None:
        _prepare(cfg.cluster.text, self.encode)
        spec = read_meta(bundle_path(cfg)).text_encoder
        self.encoder = TextEncoder(spec, resolve_device(replica_device(cfg, cfg.cluster.text)))

    @serve.batch
    async def encode(self, texts: list[str]) -> list[TextEncoding]:
        enc = await asyncio.to_thread(self.encoder.encode, texts)
        out = []
        for i in range(len(texts)):
            n = int(enc.mask[i].sum())
            out.append(to_wire(TextEncoding(enc.sentence[i : i + 1], enc.tokens[i : i + 1, :n],
                                            enc.mask[i : i + 1, :n])))
        return out


@serve.deployment
class InferenceModel:
    """The fusion model: a batch is one forward pass whatever the calls it came from."""

    def __init__(self, cfg: Config) -> None:
        _prepare(cfg.cluster.inference, self.classify)
        device = resolve_device(replica_device(cfg, cfg.cluster.inference))
        self.classifier = EmotionClassifier(load_bundle(bundle_path(cfg), device), device)

    @serve.batch
    async def classify(self, items: list[UtteranceInput]) -> list[Scores]:
        return await asyncio.to_thread(self.classifier.classify, list(from_wire(tuple(items))))
