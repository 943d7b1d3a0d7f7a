"""Model bundles: a directory with weights, the spec needed to feed them, and their provenance.

Layout::

    bundle.json        format, id, architecture + hparams + dims, labels, feature spec, speaker
                       normalisation prior (if any), text encoder, data card, scores, sha256 of every other file
    model.safetensors  the state dict
    MODEL_CARD.md      the same facts for people

Loading checks every part and refuses a mismatch with a message that names the bundle and the fault.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from emostream.models.features import FeatureSpec
from emostream.models.interface import EmotionModel, ModelDims, build_model
from emostream.models.labels import LABELS
from emostream.models.packaged import MissingModel
from emostream.models.speaker_norm import SpeakerPrior
from emostream.models.text_encoder import TextEncoderSpec
from emostream.models.text_top import check_spec

FORMAT = "emo-stream-bundle/1"
WEIGHTS = "model.safetensors"
MANIFEST = "bundle.json"
CARD = "MODEL_CARD.md"
DEFAULT_BUNDLE = Path(__file__).parent / "bundles" / "default"
# The bundles that ship, by the name a config or --bundle gives: "default" (multicorpus v12: the most accurate
# across corpora) and "fast" (v7: its features are the ASR's own encoder output, one encoder pass per utterance,
# about 110 ms less CPU per utterance; docs/cross_corpus.md, docs/benchmarks.md).
SHIPPED_BUNDLES = {name: DEFAULT_BUNDLE.parent / name for name in ("default", "fast")}


class BundleError(ValueError):
    """A bundle is missing, corrupt or inconsistent."""


@dataclass
class BundleMeta:
    """Everything in ``bundle.json`` except the checksums, which are computed on save."""

    id: str
    architecture: str
    hparams: dict[str, Any]
    dims: ModelDims
    labels: tuple[str, ...]
    features: FeatureSpec
    text_encoder: TextEncoderSpec
    data_card: dict[str, Any]
    scores: dict[str, Any] = field(default_factory=dict)
    speaker_norm: SpeakerPrior | None = None  # frames are standardised per speaker before the model sees them


@dataclass
class Bundle:
    meta: BundleMeta
    model: EmotionModel
    path: Path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_bundle(path: Path, model: EmotionModel, meta: BundleMeta, card: str) -> None:
    """Writes a bundle; ``card`` is the markdown model card (provenance, licence, scores)."""
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS))
    (path / CARD).write_text(card)
    manifest = {
        "format": FORMAT,
        "id": meta.id,
        "architecture": meta.architecture,
        "hparams": meta.hparams,
        "dims": vars(meta.dims),
        "labels": list(meta.labels),
        "features": meta.features.to_dict(),
        "speaker_norm": meta.speaker_norm.to_dict() if meta.speaker_norm else None,
        "text_encoder": meta.text_encoder.to_dict(),
        "data_card": meta.data_card,
        "scores": meta.scores,
        "files": {name: sha256(path / name) for name in (WEIGHTS, CARD)},
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _fail(path: Path, problem: str, fix: str) -> BundleError:
    return BundleError(f"model bundle {path}: {problem}; {fix}")


def read_meta(path: Path) -> BundleMeta:
    """Reads and validates ``bundle.json`` and the checksums, without building the model."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise _fail(path, f"no {MANIFEST} found", "point --bundle at a directory written by emo-train")
    try:
        m = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"{MANIFEST} is not valid JSON ({e})", "re-export the bundle") from None
    required = ("format", "id", "architecture", "hparams", "dims", "labels", "features", "text_encoder",
                "data_card", "files")
    if missing := [k for k in required if k not in m]:
        raise _fail(path, f"{MANIFEST} lacks {', '.join(missing)}", "re-export the bundle with emo-train")
    if m["format"] != FORMAT:
        raise _fail(path, f"format {m['format']!r} is not {FORMAT!r}", "re-export it with this emo-stream version")
    for name, digest in m["files"].items():
        f = path / name
        if not f.is_file():
            raise _fail(path, f"file {name} is missing", "copy the whole bundle directory")
        if sha256(f) != digest:
            raise _fail(path, f"checksum of {name} does not match {MANIFEST} (corrupt or modified)",
                        "copy the bundle again or re-export it")
    labels = tuple(m["labels"])
    if set(labels) - set(LABELS) or len(set(labels)) != len(labels):
        raise _fail(path, f"label set {list(labels)} is not a subset of {list(LABELS)} without repeats",
                    "train with the unified label set")
    try:
        dims = ModelDims(**m["dims"])
        features = FeatureSpec.from_dict(m["features"])
        text_encoder = TextEncoderSpec.from_dict(m["text_encoder"])
        speaker_norm = SpeakerPrior.from_dict(m["speaker_norm"]) if m.get("speaker_norm") else None
    except (TypeError, ValueError) as e:
        raise _fail(path, str(e), "re-export the bundle") from None
    if dims.num_classes != len(labels):
        raise _fail(path, f"model has {dims.num_classes} outputs but the label set has {len(labels)}",
                    "re-export the bundle")
    if dims.audio_dim != features.dim:
        raise _fail(path, f"model expects {dims.audio_dim}-d audio frames but the feature spec gives "
                    f"{features.dim}", "re-export the bundle")
    if dims.text_dim != text_encoder.dim:
        raise _fail(path, f"model expects {dims.text_dim}-d text but {text_encoder.name} gives "
                    f"{text_encoder.dim}", "re-export the bundle")
    try:
        check_spec(m["hparams"], text_encoder)
    except ValueError as e:
        raise _fail(path, str(e), "re-export the bundle") from None
    if speaker_norm is not None and len(speaker_norm.mean) != features.dim:
        raise _fail(path, f"speaker_norm has {len(speaker_norm.mean)}-d statistics but the feature spec gives "
                    f"{features.dim}", "re-export the bundle")
    return BundleMeta(id=m["id"], architecture=m["architecture"], hparams=m["hparams"], dims=dims,
                      labels=labels, features=features, text_encoder=text_encoder,
                      data_card=m["data_card"], scores=m.get("scores", {}), speaker_norm=speaker_norm)


def load_bundle(path: Path | str = DEFAULT_BUNDLE, device: torch.device | str = "cpu") -> Bundle:
    """Loads a bundle for inference, in eval mode on ``device``."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"model bundle {path}: no such directory; pass --bundle DIR of an exported bundle")
    meta = read_meta(path)
    try:
        model = build_model(meta.architecture, meta.dims, meta.hparams)
    except (TypeError, ValueError) as e:
        raise _fail(path, f"cannot build architecture {meta.architecture!r}: {e}", "re-export the bundle") from None
    except MissingModel as e:  # a model that holds encoder layers needs that encoder's package to build them
        raise BundleError(f"model bundle {path}: {e}") from None
    try:
        state = model.upgrade_state(load_file(str(path / WEIGHTS)))
    except (SafetensorError, OSError) as e:
        raise _fail(path, f"{WEIGHTS} cannot be read ({e})", "copy the bundle again") from None
    expected = model.state_dict()
    if missing := sorted(set(expected) - set(state)):
        raise _fail(path, f"weights lack {len(missing)} tensors (first: {missing[0]})", "re-export the bundle")
    if extra := sorted(set(state) - set(expected)):
        raise _fail(path, f"weights have {len(extra)} unexpected tensors (first: {extra[0]})", "re-export the bundle")
    if bad := [k for k in expected if expected[k].shape != state[k].shape]:
        raise _fail(path, f"tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, the architecture expects "
                    f"{tuple(expected[bad[0]].shape)}", "re-export the bundle")
    model.load_state_dict(state)
    return Bundle(meta=meta, model=model.to(device).eval(), path=path)
