"""Training configuration: a YAML file checked on load, so a typo fails at once and names the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from emostream.models.features import FeatureSpec
from emostream.models.interface import ModelDims, build_model
from emostream.models.labels import LABELS
from emostream.models.text_encoder import TextEncoderSpec
from emostream.models.text_top import check_spec
from emostream.stream.stages.vad import VadConfig

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
    """Optimisation of one branch; early stopping on its dev metric with ``patience`` epochs.

    ``amp``: mixed precision when training on CUDA (float16 autocast, gradient scaling); ignored on the CPU, where
    results stay exactly those of float32 (training/loop.py). Keyword-only, so that sections deriving from this one
    can add keys without defaults.
    """

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    class_weighting: Weighting
    amp: bool = field(default=True, kw_only=True)
    # The learning rate of tuned text encoder layers (a model with text_layers > 0): pretrained weights move slower.
    encoder_lr: float = field(default=3e-5, kw_only=True)
    # Cross-entropy label smoothing: MELD's labels are one annotator majority, often a near tie between classes.
    label_smoothing: float = field(default=0.0, kw_only=True)
    # At most this many training examples of each corpus per epoch, drawn afresh (0: all of them), so that a large
    # corpus (GoEmotions) neither drowns a small one nor makes an epoch take an hour on a CPU.
    per_corpus: int = field(default=0, kw_only=True)
    # The same per named corpus, where one should weigh more than the rest (0: all of its examples).
    per_corpus_of: dict[str, int] = field(default_factory=dict, kw_only=True)


@dataclass(frozen=True)
class AudioTraining(BranchTraining):
    """Audio branch optimisation plus augmentation: a random level change of up to ``gain_db`` either way
    (microphone levels differ from the studio's) and a random crop keeping at least ``crop_min`` of the
    frames (VAD cuts vary)."""

    gain_db: float
    crop_min: float
    # Probability that a training clip is heard through a simulated phone line in an epoch (training/telephone.py;
    # each clip's line is fixed, so its features are computed once); 0 turns it off.
    telephone: float = field(default=0.0, kw_only=True)
    # Probability that a training clip is heard 10 % slower or faster (half each; training/speed.py) in an epoch,
    # instead of clean; 0 turns it off. telephone + speed is at most 1.
    speed: float = field(default=0.0, kw_only=True)
    # With speaker normalisation: probabilities that a training clip is standardised as the stream would at a
    # random point of its speaker's talk (a random running order) or as the speaker's first utterance, instead of
    # by all of the speaker's frames (training/speaker_frames.py). Independent of ``telephone``.
    running_order: float = field(default=0.0, kw_only=True)
    first_utterance: float = field(default=0.0, kw_only=True)
    # The same, with a prior fitted on the *other* corpora only, each speaker's clips heard in order (the first as a
    # first utterance, later ones by the running statistics): a caller on a line and in a room the model never
    # heard, whose offset from the prior is the domain's, not an emotion. Needs two audio corpora or more.
    new_domain: float = field(default=0.0, kw_only=True)


@dataclass(frozen=True)
class FusedTraining(AudioTraining):
    """Joint training of a whole architecture on label-matched pairs (training/fused.py).

    Each epoch pairs every training clip of the audio corpora with a training utterance of the text corpora of the
    same label (with its past-only context), drawn afresh; ``neutral_text`` of the pairs whose clip has its own
    English words (RAVDESS's fixed statements) get those instead (words with no emotion). ``text_only`` training
    utterances of each text corpus are added text-only (audio absent) each epoch. ``modality_dropout`` is the
    probability of dropping each modality of a pair (never both, ``drop_modalities``). ``class_weighting`` weights
    the pair loss, ``text_class_weighting`` the text-only loss. ``clip_grad`` bounds the gradient norm (0: off).
    ``calibrate`` fits a temperature on dev after training and folds it into the output layer. ``max_minutes`` > 0
    starts no epoch after that many minutes (keeps runs short on a shared CPU; the result then depends on the
    machine's speed). The renderings of ``AudioTraining`` (``telephone``, ...) apply to the pairs' audio.
    """

    modality_dropout: float
    neutral_text: float
    text_only: int
    text_class_weighting: Weighting = "sqrt"
    clip_grad: float = 1.0
    calibrate: bool = True
    max_minutes: float = 0.0  # wall-clock budget: no new epoch starts after it (0: none); the card says so


@dataclass(frozen=True)
class Manifests:
    """Your own data instead of MELD + RAVDESS: CSV/JSONL manifests (training/data/manifest.py), paths relative to
    the config file. ``licence`` and ``description`` go into the bundle's data card and model card."""

    train: str
    dev: str
    test: str
    licence: str
    description: str = ""


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
    splits: Splits | None = None  # RAVDESS actors; required unless ``manifests`` is given
    manifests: Manifests | None = None
    # Either both branch sections (branch-wise training, training/train.py) or fused_training (training/fused.py).
    audio_training: AudioTraining | None = None
    text_training: BranchTraining | None = None
    fused_training: FusedTraining | None = None
    # Speaker normalisation of the audio frames (models/speaker_norm.py): the corpus prior's weight in frames;
    # 0 turns it off.
    speaker_norm_frames: float = 0.0
    # The corpora each branch learns from (training/data/registry.py): RAVDESS (split by ``splits``) and MELD always,
    # the others split as the registry fixes them.
    audio_corpora: list[str] = field(default_factory=lambda: ["ravdess"])
    text_corpora: list[str] = field(default_factory=lambda: ["meld"])

    @property
    def fused(self) -> bool:
        return self.fused_training is not None

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
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(hint)) != 2:
            raise TypeError(f"unsupported config type {hint} for {key}")
        return None if value is None else _check_type(value, args[0], key)  # only ``X | None``
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
    if cfg.manifests is not None and not cfg.fused:
        raise ConfigError("manifests: training on your own manifests needs fused_training")
    if cfg.splits is None:
        if cfg.manifests is None:
            raise ConfigError("missing key splits")
    else:
        _check_splits(cfg.splits)
    _check_corpora(cfg)
    _check_training(cfg)
    try:
        check_spec(cfg.model.hparams, cfg.text_encoder)
    except ValueError as e:
        raise ConfigError(f"model.hparams: {e}") from None
    try:
        build_model(cfg.model.architecture, cfg.dims(), cfg.model.hparams)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: cannot build {cfg.model.architecture!r} with hparams {cfg.model.hparams}: {e}") \
            from None
    return cfg


def _check_corpora(cfg: TrainConfig) -> None:
    from emostream.training.data.registry import CORPORA

    for key, modality, first in (("audio_corpora", "audio", "ravdess"), ("text_corpora", "text", "meld")):
        names: list[str] = getattr(cfg, key)
        wrong = [n for n in names if n not in CORPORA or CORPORA[n].modality != modality]
        if wrong or len(set(names)) != len(names) or (names and names[0] != first):
            known = [n for n, c in CORPORA.items() if c.modality == modality]
            raise ConfigError(f"{key}: {names} must start with {first!r} and name each of {known} at most once")


def _check_splits(s: Splits) -> None:
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


def _check_training(cfg: TrainConfig) -> None:
    if cfg.fused:
        if cfg.audio_training is not None or cfg.text_training is not None:
            raise ConfigError("fused_training: give either fused_training or audio_training + text_training, "
                              "not both")
        sections = ("fused_training",)
        f = cfg.fused_training
        assert f is not None
        if not 0 <= f.modality_dropout < 0.5:
            raise ConfigError("fused_training.modality_dropout: must be in [0, 0.5) (a pair keeps one modality)")
        if not 0 <= f.neutral_text <= 1:
            raise ConfigError("fused_training.neutral_text: must be in [0, 1]")
        if f.text_only < 0 or f.clip_grad < 0 or f.max_minutes < 0:
            raise ConfigError("fused_training: text_only, clip_grad and max_minutes must be >= 0")
        if f.per_corpus or f.per_corpus_of:
            raise ConfigError("fused_training.per_corpus: fused training pairs every training clip each epoch and "
                              "draws text_only utterances of each text corpus; leave per_corpus and per_corpus_of out")
    elif cfg.audio_training is None or cfg.text_training is None:
        raise ConfigError("missing key audio_training / text_training (or give fused_training)")
    else:
        sections = ("audio_training", "text_training")
    for branch in sections:
        t: BranchTraining = getattr(cfg, branch)
        for key in ("epochs", "batch_size", "patience"):
            if getattr(t, key) < 1:
                raise ConfigError(f"{branch}.{key}: must be at least 1")
        if t.lr <= 0 or t.weight_decay < 0:
            raise ConfigError(f"{branch}: lr must be > 0 and weight_decay >= 0")
        if not 0 <= t.label_smoothing < 1:
            raise ConfigError(f"{branch}.label_smoothing: must be in [0, 1)")
        if t.per_corpus < 0:
            raise ConfigError(f"{branch}.per_corpus: must be 0 (all) or more")
        corpora = cfg.audio_corpora if branch != "text_training" else cfg.text_corpora
        for name, n in t.per_corpus_of.items():
            if name not in corpora:
                raise ConfigError(f"{branch}.per_corpus_of.{name}: not one of this branch's corpora {corpora}")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ConfigError(f"{branch}.per_corpus_of.{name}: must be a whole number, 0 (all) or more")
    audio: AudioTraining = cfg.fused_training if cfg.fused else cfg.audio_training  # type: ignore[assignment]
    key = "fused_training" if cfg.fused else "audio_training"
    if audio.gain_db < 0 or not 0 < audio.crop_min <= 1 or not 0 <= audio.telephone <= 1:
        raise ConfigError(f"{key}: gain_db must be >= 0, crop_min in (0, 1] and telephone in [0, 1]")
    if audio.speed < 0 or audio.telephone + audio.speed > 1:
        raise ConfigError(f"{key}: speed must be >= 0, and telephone + speed at most 1 (the rest is heard clean)")
    renderings = ("running_order", "first_utterance", "new_domain")
    for name in renderings:
        if not 0 <= getattr(audio, name) <= 1:
            raise ConfigError(f"{key}.{name}: must be in [0, 1]")
    if sum(getattr(audio, name) for name in renderings) > 1:
        raise ConfigError(f"{key}: running_order + first_utterance + new_domain must be at most 1 (the rest is the "
                          "steady state)")
    if any(getattr(audio, name) for name in renderings) and not cfg.speaker_norm_frames:
        raise ConfigError(f"{key}: running_order, first_utterance and new_domain render speaker normalisation; set "
                          "speaker_norm_frames > 0 or leave them 0")
    if audio.new_domain and len(cfg.audio_corpora) < 2:
        raise ConfigError(f"{key}.new_domain: needs a prior fitted on other corpora than the clip's; name two "
                          "audio_corpora or more, or leave it 0")
    if audio.gain_db and cfg.features.kind == "whisper":
        raise ConfigError(f"{key}.gain_db: level augmentation shifts log-mel or MFCC frames after extraction, and "
                          "Whisper states do not change linearly with level; set gain_db: 0")


def apply_overrides(data: Any, overrides: list[str]) -> Any:
    """``data`` (a parsed config) with each ``KEY=VALUE`` of ``overrides`` set: KEY a dotted path whose parents
    exist (``model.hparams.audio_pool``), VALUE read as YAML (``[meld, goemotions]``, ``0.5``, ``attentive``)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: write KEY=VALUE, e.g. model.hparams.audio_pool=attentive")
        *parents, last = key.split(".")
        node = data
        for i, part in enumerate(parents):
            if not isinstance(node, dict) or not isinstance(node.get(part), dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parents[: i + 1])} is not a section of the config")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: the config is not a mapping of keys")
        try:
            node[last] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({e})") from None
    return data


def load_config(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    """Reads and validates a YAML config, with ``overrides`` (``apply_overrides``) set first; every error names the
    file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    try:
        cfg = parse_config(apply_overrides(data, overrides or []))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if cfg.manifests is not None:  # manifest paths are relative to the config file
        m = cfg.manifests
        cfg = dataclasses.replace(cfg, manifests=dataclasses.replace(
            m, **{k: str((path.parent / getattr(m, k)).resolve()) for k in ("train", "dev", "test")}))
    return cfg
