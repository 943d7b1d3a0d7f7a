"""What both training paths (branch-wise train.py, joint fused.py) share outside their loops: the seeded model they
start from, the class weights of their loss, and the bundle they export."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emostream.models.bundle import Bundle, BundleMeta, load_bundle, save_bundle
from emostream.models.interface import EmotionModel, ModelDims, build_model
from emostream.models.labels import LABELS
from emostream.models.speaker_norm import SpeakerPrior
from emostream.models.text_top import TunedTop
from emostream.training.config import TrainConfig


def class_weights(y: np.ndarray, num_classes: int, how: str) -> torch.Tensor | None:
    """Loss weights against class imbalance: inverse frequency ("balanced"), its square root, or none."""
    if how == "none":
        return None
    counts = np.bincount(y, minlength=num_classes).astype(float)
    w = np.divide(counts.sum() / num_classes, counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(np.sqrt(w) if how == "sqrt" else w, dtype=torch.float32)


def new_model(cfg: TrainConfig, dims: ModelDims) -> EmotionModel:
    """The config's model, seeded, with tuned text layers (if any) starting from the packaged encoder's weights."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.architecture, dims, cfg.model.hparams)
    for top in model.modules():
        if isinstance(top, TunedTop):
            top.load_pretrained()
    return model


@dataclass
class TrainingRun:
    model: EmotionModel  # as trained, in memory (the bundle holds the same weights)
    results: dict[str, dict[str, Any]]  # held-out test results by condition


def export_bundle(cfg: TrainConfig, model: EmotionModel, card_data: dict[str, Any],
                  card: Callable[[BundleMeta, dict], str], out: Path,
                  speaker_norm: SpeakerPrior | None = None) -> Bundle:
    """Saves the trained model as a bundle and loads it back: scores are taken on exactly what was exported."""
    meta = BundleMeta(id=cfg.bundle_id, architecture=cfg.model.architecture, hparams=cfg.model.hparams,
                      dims=cfg.dims(), labels=LABELS, features=cfg.features, text_encoder=cfg.text_encoder,
                      data_card=card_data, speaker_norm=speaker_norm)
    save_bundle(out, model, meta, card(meta, {}))
    return load_bundle(out)
