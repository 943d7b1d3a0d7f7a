"""The models every stream shares, loaded once and put behind their services.

A stage holds a service, never a model: swapping a service's implementation (a remote one, say) leaves the
stages as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from emostream.models.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from emostream.models.features import Extractor, make_extractor
from emostream.models.packaged import MissingModel
from emostream.models.text_encoder import TextEncoder
from emostream.stream.config import Config
from emostream.stream.errors import UserError
from emostream.stream.observe.metrics import PrometheusExporter
from emostream.stream.services.asr import AsrService, Transcriber
from emostream.stream.services.device import resolve_device
from emostream.stream.services.inference import EmotionClassifier, InferenceService
from emostream.stream.stages.speakers import SpeakerEncoder


@dataclass
class Runtime:
    """The models every stream shares, behind their services."""

    bundle: Bundle
    asr: AsrService
    features: Extractor
    encoder: TextEncoder
    inference: InferenceService
    speaker_encoder: SpeakerEncoder | None
    prometheus: PrometheusExporter | None

    async def close(self) -> None:
        await self.asr.close()
        await self.inference.close()
        if self.prometheus:
            self.prometheus.close()


def load_runtime(cfg: Config) -> Runtime:
    # Parallelism comes from many streams and from CTranslate2's own threads; torch's intra-op threads
    # on top of those only contend for the same cores (measured: 40x slower speaker embeddings on 2 cores).
    torch.set_num_threads(1)
    device = resolve_device(cfg.model.device)
    bundle_path = DEFAULT_BUNDLE if cfg.model.bundle == "default" else Path(cfg.model.bundle)
    bundle = load_bundle(bundle_path, device)
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
        asr = AsrService(Transcriber(cfg.asr, device))
        # Its own Whisper instance even when the bundle asks for the ASR's tiny.en: a CTranslate2 model runs
        # one call at a time, so sharing would queue every utterance's features behind the decodes.
        features = make_extractor(bundle.meta.features, device)
        encoder = TextEncoder(bundle.meta.text_encoder, device)
    except MissingModel as e:
        raise UserError(f"{e} (needed by bundle {bundle_path})") from None
    return Runtime(
        bundle=bundle,
        asr=asr,
        features=features,
        encoder=encoder,
        inference=InferenceService(EmotionClassifier(bundle, device), cfg.model.max_batch, cfg.model.max_wait_ms),
        speaker_encoder=SpeakerEncoder(device) if cfg.speakers.enabled else None,
        prometheus=prometheus,
    )
