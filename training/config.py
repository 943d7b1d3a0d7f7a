"""Training configuration: a YAML file checked on load, so a typo fails at once and names the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from emostream.models.features import FeatureSpec
from emostream.models.interface import ModelDims, build_model
from emostream.models.labels import LABELS
from emostream.models.text_encoder import TextEncoderSpec
from emostream.stream.vad import VadConfig

Weighting = Literal["none", "balanced", "sqrt"]


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Splits:
    """RAVDESS actors per split: training, early stopping (dev) and the untouched held-out test."""

    ravdess_train_actors: list[int]
    ravdess_dev_actors: list[int]
    ravdess_test_actors: list[int]


@dataclass(frozen=True)
class BranchTraining:
    """Optimisation of one branch; early stopping on its dev metric with ``patience`` epochs."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    class_weighting: Weighting


@dataclass(frozen=True)
class AudioTraining(BranchTraining):
    """Audio branch optimisation plus augmentation: a random level change of up to ``gain_db`` either way
    (microphone levels differ from the studio's) and a random crop keeping at least ``crop_min`` of the
    frames (VAD cuts vary)."""

    gain_db: float
    crop_min: float


@dataclass(frozen=True)
class ModelConfig:
    architecture: str
    hparams: dict[str, Any]


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    bundle_id: str
    context_size: int  # H past utterances of the dialogue
    features: FeatureSpec
    text_encoder: TextEncoderSpec
    vad: VadConfig
    model: ModelConfig
    splits: Splits
    audio_training: AudioTraining
    text_training: BranchTraining

    def dims(self) -> ModelDims:
        return ModelDims(num_classes=len(LABELS), audio_dim=self.features.dim, text_dim=self.text_encoder.dim,
                         context_size=self.context_size)


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """``value`` if it matches ``hint`` (ints pass as floats); else a ConfigError naming ``key``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, typing.get_args(hint)))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)[:1]
        return origin(_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        raise TypeError(f"unsupported config type {hint} for {key}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} ({value!r})")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """Builds dataclass ``cls`` from a mapping: unknown, missing (when no default) and mistyped keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    prefix = f"{where}." if where else ""
    if unknown := sorted(set(data) - set(known)):
        raise ConfigError(f"unknown key {prefix}{unknown[0]}; known keys here: {', '.join(known)}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key {prefix}{name}")
            continue
        values[name] = _check_type(data[name], hints[name], prefix + name)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def parse_config(data: Any) -> TrainConfig:
    """Validates a parsed YAML document, including cross-field rules."""
    cfg: TrainConfig = _build(TrainConfig, data, "")
    if cfg.context_size < 0:
        raise ConfigError("context_size: must be 0 or more")
    try:
        FeatureSpec.from_dict(cfg.features.to_dict())
        TextEncoderSpec.from_dict(cfg.text_encoder.to_dict())
    except ValueError as e:
        raise ConfigError(str(e)) from None
    s = cfg.splits
    groups = {"ravdess_train_actors": s.ravdess_train_actors, "ravdess_dev_actors": s.ravdess_dev_actors,
              "ravdess_test_actors": s.ravdess_test_actors}
    for name, actors in groups.items():
        if not actors or any(not 1 <= a <= 24 for a in actors):
            raise ConfigError(f"splits.{name}: needs one or more actor numbers in 1..24")
    seen: dict[int, str] = {}
    for name, actors in groups.items():
        for a in actors:
            if a in seen:
                raise ConfigError(f"splits.{name}: actor {a} is also in splits.{seen[a]} (speakers must not overlap)")
            seen[a] = name
    for branch in ("audio_training", "text_training"):
        t: BranchTraining = getattr(cfg, branch)
        for key in ("epochs", "batch_size", "patience"):
            if getattr(t, key) < 1:
                raise ConfigError(f"{branch}.{key}: must be at least 1")
        if t.lr <= 0 or t.weight_decay < 0:
            raise ConfigError(f"{branch}: lr must be > 0 and weight_decay >= 0")
    if cfg.audio_training.gain_db < 0 or not 0 < cfg.audio_training.crop_min <= 1:
        raise ConfigError("audio_training: gain_db must be >= 0 and crop_min in (0, 1]")
    try:
        build_model(cfg.model.architecture, cfg.dims(), cfg.model.hparams)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: cannot build {cfg.model.architecture!r} with hparams {cfg.model.hparams}: {e}") \
            from None
    return cfg


def load_config(path: Path) -> TrainConfig:
    """Reads and validates a YAML config; every error names the file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    try:
        return parse_config(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
