"""The models every stream shares, loaded once and put behind their services.

A stage holds a service (``interface.py``), never a model: ``emo-stream serve --cluster`` builds a Runtime of Ray
Serve deployments instead (``stream/cluster/services.py``) and the stages stay as they are.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path

from emostream.models.bundle import SHIPPED_BUNDLES, Bundle, load_bundle
from emostream.models.features import make_extractor
from emostream.models.functionals import Functionals
from emostream.models.packaged import MissingModel
from emostream.models.text_encoder import TextEncoder
from emostream.stream.config import Config
from emostream.stream.errors import UserError
from emostream.stream.observe.metrics import PrometheusExporter
from emostream.stream.services.asr import AsrService, Transcriber
from emostream.stream.services.device import resolve_device
from emostream.stream.services.inference import EmotionClassifier, InferenceService
from emostream.stream.services.interface import Asr, Classifier, FeatureExtractor, SentenceEncoder, SharedEncoder
from emostream.stream.services.shared_states import SharedStates, why_not_shared
from emostream.stream.services.thread_pools import quiet_thread_pools
from emostream.stream.services.threaded import ThreadedExtractor, ThreadedTextEncoder
from emostream.stream.stages.speakers import SpeakerEncoder

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The models every stream shares, behind their services."""

    bundle: Bundle
    asr: Asr
    # SharedEncoder: the bundle's features come from the ASR's own encoder pass (shared_states.py).
    features: FeatureExtractor | SharedEncoder
    # The bundle's utterance functionals, appended to the features' frames by a stage of each stream.
    functionals: Functionals | None
    encoder: SentenceEncoder
    inference: Classifier
    speaker_encoder: SpeakerEncoder | None
    prometheus: PrometheusExporter | None

    async def close(self) -> None:
        await self.asr.close()
        await self.inference.close()
        if self.prometheus:
            self.prometheus.close()


def bundle_path(cfg: Config) -> Path:
    return SHIPPED_BUNDLES.get(cfg.model.bundle) or Path(cfg.model.bundle)


def load_runtime(cfg: Config) -> Runtime:
    quiet_thread_pools()
    device = resolve_device(cfg.model.device)
    bundle = load_bundle(bundle_path(cfg), device)
    prometheus = None
    if cfg.metrics.prometheus_port:
        try:
            prometheus = PrometheusExporter(cfg.metrics.prometheus_host, cfg.metrics.prometheus_port)
        except OSError as e:
            where = f"{cfg.metrics.prometheus_host}:{cfg.metrics.prometheus_port}"
            raise UserError(
                f"cannot serve Prometheus metrics on {where} ({e.strerror}); pick another metrics.prometheus_port"
            ) from None
    try:  # every packaged model: a missing one is a setup error that names what to install
        transcriber = Transcriber(cfg.asr, device)
        asr = AsrService(transcriber, cfg.asr.max_batch)
        # One encoder pass per utterance when the bundle's features are the ASR's encoder states; otherwise
        # the features get their own model (a CTranslate2 model runs one call at a time).
        unshared = why_not_shared(bundle.meta.features, transcriber.cfg, cfg.vad, device)
        log.info("acoustic features: %s", f"own encoder pass ({unshared})" if unshared else "the ASR's encodes")
        spec = bundle.meta.features
        precision = cfg.model.resolved_precision(device)
        log.info("PyTorch encoders (a bundle's Whisper blocks, the speaker encoder) in %s", precision)
        features = ThreadedExtractor(make_extractor(spec, device, with_functionals=False, precision=precision)) \
            if unshared else SharedStates(asr)
        functionals = Functionals(spec.functionals) if spec.functionals else None
        encoder = ThreadedTextEncoder(TextEncoder(bundle.meta.text_encoder, device))
    except MissingModel as e:
        raise UserError(f"{e} (needed by bundle {bundle_path(cfg)})") from None
    runtime = Runtime(
        bundle=bundle,
        asr=asr,
        features=features,
        functionals=functionals,
        encoder=encoder,
        inference=InferenceService(EmotionClassifier(bundle, device), cfg.model.max_batch, cfg.model.max_wait_ms),
        speaker_encoder=SpeakerEncoder(device, bfloat16=precision == "bfloat16") if cfg.speakers.enabled else None,
        prometheus=prometheus,
    )
    freeze_loaded_objects()
    return runtime


def freeze_loaded_objects() -> None:
    """Takes what is loaded by now (about 500,000 Python objects of the models and their libraries, alive as long as
    the process) out of the garbage collector's reach. Otherwise every full collection walks them all, about 200 ms
    with the GIL held, a stall in every stream at once; a server allocating for each message triggers them the
    most. Garbage already there is collected first, so that none of it is kept for good."""
    gc.collect()
    gc.freeze()
