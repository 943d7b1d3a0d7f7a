"""Metrics against hand-computed values, and config validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from emostream.training.config import ConfigError, load_config, parse_config
from emostream.training.metrics import scores, write_report
from tests import REPO_ROOT

LABELS3 = ("neutral", "joy", "anger")




def test_scores_match_hand_computation(tmp_path: Path) -> None:
    # truth: 4 neutral, 2 joy, 0 anger; predictions: N N N J | J A
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 2])
    r = scores(y_true, y_pred, LABELS3)
    # neutral: P 3/3, R 3/4, F1 6/7; joy: P 1/2, R 1/2, F1 1/2; anger: P 0, R 0 (no support)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["unweighted_recall"] == pytest.approx((3 / 4 + 1 / 2) / 2)  # anger has no support: not averaged
    assert r["weighted_f1"] == pytest.approx((4 * 6 / 7 + 2 * 0.5) / 6)
    assert r["macro_f1"] == pytest.approx((6 / 7 + 0.5) / 2)
    assert r["per_class"]["joy"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert r["confusion"] == [[3, 1, 0], [0, 1, 1], [0, 0, 0]]
    write_report(r, "hand example", tmp_path, "ex")
    assert json.loads((tmp_path / "ex.json").read_text())["n"] == 6
    assert "| joy | 0.500 | 0.500 | 0.500 | 2 |" in (tmp_path / "ex.md").read_text()
    assert (tmp_path / "ex.png").read_bytes()[:4] == b"\x89PNG"


def test_scores_refuse_empty_input() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        scores(np.array([], dtype=int), np.array([], dtype=int), LABELS3)


def _base() -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / "baseline.yaml").read_text())


def test_shipped_config_loads() -> None:
    cfg = load_config(REPO_ROOT / "configs" / "baseline.yaml")
    assert cfg.context_size == 4 and cfg.dims().audio_dim == cfg.features.dim
    whisper = load_config(REPO_ROOT / "configs" / "whisper_baseline.yaml")
    assert whisper.features.kind == "whisper" and whisper.dims().audio_dim == 384  # tiny.en


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(sed=1), "unknown key sed"),
    (lambda d: d["audio_training"].update(lr_max=1.0), "unknown key audio_training.lr_max"),
    (lambda d: d.pop("seed"), "missing key seed"),
    (lambda d: d["text_training"].pop("patience"), "missing key text_training.patience"),
    (lambda d: d["text_training"].update(epochs="many"), "text_training.epochs: expected int, got str"),
    (lambda d: d["audio_training"].update(epochs=True), "audio_training.epochs: expected int, got bool"),
    (lambda d: d["audio_training"].update(class_weighting="inverse"), "audio_training.class_weighting: 'inverse'"),
    (lambda d: d["splits"].update(ravdess_dev_actors=[17, "x"]), r"splits.ravdess_dev_actors\[1\]"),
    (lambda d: d["splits"].update(ravdess_test_actors=[16, 21]), "actor 16 is also in splits.ravdess_train_actors"),
    (lambda d: d["features"].update(n_fft=512), "unknown key features.n_fft"),
    (lambda d: d["vad"].update(aggressiveness=7), "vad.*aggressiveness must be 0, 1, 2 or 3"),
    (lambda d: d["model"]["hparams"].update(width=3), "model: cannot build"),
    (lambda d: d["model"].update(architecture="gpt"), "unknown architecture 'gpt'"),
    (lambda d: d["features"].update(kind="whisper", hop_ms=20.0, deltas=False),
     "audio_training.gain_db: level augmentation .* set gain_db: 0"),
    (lambda d: d["text_encoder"].update(name="bert-large"), "text encoder 'bert-large' is not available offline"),
])
def test_config_errors_name_the_key(edit, message: str) -> None:
    data = _base()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1\n")
    with pytest.raises(ConfigError, match=rf"{bad}: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
