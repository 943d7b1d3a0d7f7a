"""Imports every architecture module so that each registers itself with :func:`register`, and tells which inputs
each architecture expects by default."""

from __future__ import annotations

from emostream.models import (  # noqa: F401
    baseline,
    cbla_bilstm,
    dialogue_bilstm_mha,
    melcnn_bigru,
    multab,
    pconv_blstm,
)
from emostream.models.features import FeatureSpec
from emostream.models.interface import architectures
from emostream.models.text_encoder import TextEncoderSpec


def default_inputs(architecture: str) -> tuple[FeatureSpec, TextEncoderSpec]:
    """The feature spec and text encoder spec an architecture was designed for (class attributes
    ``default_features`` and ``text_level``; MFCC and sentence level where it declares none)."""
    cls = architectures()[architecture]
    features = getattr(cls, "default_features", FeatureSpec())
    return features, TextEncoderSpec(level=getattr(cls, "text_level", "sentence"))
