"""The Runtime of an ingress replica: the bundle's metadata and the per-call helpers here, the shared models
behind Ray handles. The stages get it exactly as they get the single-process one."""

from __future__ import annotations

from ray.serve.handle import DeploymentHandle

from emostream.models.bundle import load_bundle
from emostream.models.functionals import Functionals
from emostream.stream.cluster.models import replica_device
from emostream.stream.cluster.services import RayAsr, RayClassifier, RayExtractor, RayStates, RayTextEncoder
from emostream.stream.config import Config
from emostream.stream.services.device import resolve_device
from emostream.stream.services.runtime import Runtime, bundle_path
from emostream.stream.services.thread_pools import quiet_thread_pools
from emostream.stream.stages.speakers import SpeakerEncoder


def cluster_runtime(cfg: Config, asr: DeploymentHandle, features: DeploymentHandle | None, text: DeploymentHandle,
                    inference: DeploymentHandle) -> Runtime:
    """``features`` None: the bundle's features come from the ASR replicas' own encodes (``models.py``)."""
    quiet_thread_pools()
    device = resolve_device(replica_device(cfg, cfg.cluster.ingress))
    bundle = load_bundle(bundle_path(cfg), device)  # small; its labels, dims and ids shape every call's events
    return Runtime(
        bundle=bundle,
        asr=RayAsr(asr),
        features=RayStates(asr) if features is None else RayExtractor(features),
        # The functionals are fed as each utterance is spoken: beside the call, like its VAD.
        functionals=Functionals(bundle.meta.features.functionals) if bundle.meta.features.functionals else None,
        encoder=RayTextEncoder(text, bundle.meta.text_encoder),
        inference=RayClassifier(inference),
        # Speaker turns are per-call state and a small model: kept beside the call, not a deployment.
        speaker_encoder=SpeakerEncoder(device, bfloat16=cfg.model.resolved_precision(device) == "bfloat16")
        if cfg.speakers.enabled else None,
        prometheus=None,  # Ray exports each replica's metrics itself (docs/cluster.md)
    )
