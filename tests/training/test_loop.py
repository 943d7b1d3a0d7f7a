"""Checkpoint and resume of both training loops (training/loop.py): a run interrupted after some epochs and resumed
ends with exactly the weights of an uninterrupted run; a finished loop is not retrained; a checkpoint of another
config is refused; on CUDA, mixed precision trains and the weights come back on the CPU."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from emostream.models.collate import UtteranceInput
from emostream.models.interface import EmotionModel, build_model
from emostream.training.augment import augment_audio
from emostream.training.batching import predict
from emostream.training.cli import train_main
from emostream.training.config import TrainConfig, load_config
from emostream.training.fused import Group, fit_fused
from emostream.training.loop import Checkpoint, CheckpointError, fingerprint, run_checkpoints
from emostream.training.train import fit_branch
from tests import REPO_ROOT
from tests.training.test_fused import tiny_manifest_config

# Dev scores by epoch. "improves": the best epoch comes after the interruption (its weights depend on everything
# restored); "stops": patience runs out after the interruption only if the stale count was restored.
SCHEDULES = {"improves": ([0.2, 0.5, 0.4, 0.45, 0.6, 0.3], 3), "stops": ([0.2, 0.5, 0.4, 0.45, 0.48, 0.9], 3)}
INTERRUPT = 3  # the first run is interrupted during epoch 3, after 3 finished epochs were checkpointed


def _items(dims: Any, n: int) -> tuple[list[UtteranceInput], np.ndarray]:
    gen = torch.Generator().manual_seed(0)
    items = [UtteranceInput(audio=torch.randn(30, dims.audio_dim, generator=gen) + i % 7,
                            sentence=torch.randn(dims.text_dim, generator=gen), tokens=None, speaker="a")
             for i in range(n)]
    return items, np.arange(n) % 7


def _scripted(model: EmotionModel, items: list[UtteranceInput], scores: list[float], start: int = 0,
              interrupt: int | None = None) -> Callable[[], float]:
    """Dev scores from ``scores`` from epoch ``start`` on (a resumed process knows nothing of earlier calls);
    raises KeyboardInterrupt at epoch ``interrupt``, as Ctrl-C during that epoch would."""
    epochs = iter(range(start, len(scores)))

    def dev() -> float:
        epoch = next(epochs)
        predict(model, items)  # as a real dev score would: eval mode, no gradient
        if epoch == interrupt:
            raise KeyboardInterrupt
        return scores[epoch]

    return dev


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _fused_cfg(arch: str, epochs: int, patience: int) -> TrainConfig:
    cfg = load_config(REPO_ROOT / "configs" / f"{arch}.yaml")
    ft = dataclasses.replace(cfg.fused_training, epochs=epochs, patience=patience, batch_size=4, max_minutes=0)
    return dataclasses.replace(cfg, fused_training=ft)


def _fit_fused(cfg: TrainConfig, ckpt: Checkpoint, scores: list[float], seed: int, start: int = 0,
               interrupt: int | None = None) -> tuple[EmotionModel, dict[str, Any]]:
    """A fresh process: the model built as run_fused_training builds it, then a global torch RNG and a numpy
    generator in whatever state (``seed``): a resumed run must take both from the checkpoint."""
    torch.manual_seed(0)
    model = build_model(cfg.model.architecture, cfg.dims(), cfg.model.hparams)
    items, y = _items(cfg.dims(), 12)
    scripted = _scripted(model, items, scores, start, interrupt)

    def dev() -> tuple[float, dict[str, float]]:
        score = scripted()
        return score, {"dev": score}

    torch.manual_seed(seed)
    run = fit_fused(model, cfg, lambda: [Group(items, y, None, True), Group(items[:4], y[:4], None, False)], dev,
                    np.random.default_rng(seed), ckpt=ckpt)
    return model, run


@pytest.mark.parametrize(("arch", "schedule"), [("cbla_bilstm", "improves"),  # dropout, regularization()
                                                ("melcnn_bigru", "stops")])  # batch norm
def test_fit_fused_resumed_equals_uninterrupted(arch: str, schedule: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    scores, patience = SCHEDULES[schedule]
    cfg = _fused_cfg(arch, len(scores), patience)
    whole = Checkpoint(tmp_path / "whole.pt", fingerprint(cfg))
    ref_model, ref = _fit_fused(cfg, whole, scores, seed=1)

    ckpt = Checkpoint(tmp_path / "fused.pt", fingerprint(cfg))
    with pytest.raises(KeyboardInterrupt):
        _fit_fused(cfg, ckpt, scores, seed=1, interrupt=INTERRUPT)
    saved = torch.load(ckpt.path, weights_only=True)
    assert saved["epoch"] == INTERRUPT and not saved["done"]
    model, run = _fit_fused(cfg, dataclasses.replace(ckpt, resume=True), scores, seed=2, start=INTERRUPT)

    assert _states_equal(model.state_dict(), ref_model.state_dict())
    assert run == ref
    assert run["best_epoch"] == (4 if schedule == "improves" else 1)
    final, ref_final = torch.load(ckpt.path, weights_only=True), torch.load(whole.path, weights_only=True)
    assert _states_equal(final["keep"], ref_final["keep"])  # the last epoch's weights too, not only the best
    assert final["opt"]["state"].keys() == ref_final["opt"]["state"].keys()
    assert all(_states_equal(final["opt"]["state"][k], ref_final["opt"]["state"][k]) for k in final["opt"]["state"])
    assert all(v.device.type == "cpu" for v in model.state_dict().values())


def _fit_branch(ckpt: Checkpoint, scores: list[float], start: int = 0, interrupt: int | None = None,
                dev: Callable[[], float] | None = None) -> tuple[EmotionModel, Any]:
    cfg = load_config(REPO_ROOT / "configs" / "baseline.yaml")
    torch.manual_seed(0)
    model = build_model(cfg.model.architecture, cfg.dims(), cfg.model.hparams)
    items, y = _items(cfg.dims(), 20)
    at = dataclasses.replace(cfg.audio_training, epochs=len(scores), patience=3, batch_size=8, crop_min=0.7)
    result = fit_branch(model, "audio", items, y, dev or _scripted(model, items, scores, start, interrupt), at, 7,
                        augment=lambda b, g: augment_audio(b, cfg.features, at.gain_db, at.crop_min, g), ckpt=ckpt)
    return model, result


def test_fit_branch_resumed_equals_uninterrupted_and_finished_is_skipped(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    scores = SCHEDULES["improves"][0]
    cfg_hash = fingerprint("branch test")
    ref_model, ref = _fit_branch(Checkpoint(tmp_path / "whole.pt", cfg_hash), scores)

    ckpt = Checkpoint(tmp_path / "audio.pt", cfg_hash)
    with pytest.raises(KeyboardInterrupt):
        _fit_branch(ckpt, scores, interrupt=INTERRUPT)
    assert torch.load(ckpt.path, weights_only=True)["epoch"] == INTERRUPT
    model, result = _fit_branch(dataclasses.replace(ckpt, resume=True), scores, start=INTERRUPT)
    assert _states_equal(model.state_dict(), ref_model.state_dict())
    assert dataclasses.replace(result, seconds=0.0) == dataclasses.replace(ref, seconds=0.0)
    assert result.best_epoch == 4 and result.epochs_run == len(scores)

    def no_training() -> float:
        raise AssertionError("a finished branch was trained again")

    again, skipped = _fit_branch(dataclasses.replace(ckpt, resume=True), scores, dev=no_training)
    assert _states_equal(again.state_dict(), ref_model.state_dict())
    assert dataclasses.replace(skipped, seconds=0.0) == dataclasses.replace(ref, seconds=0.0)


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = _fused_cfg("dialogue_bilstm_mha", 1, 1)
    ckpt = Checkpoint(tmp_path / "fused.pt", fingerprint(cfg))
    _fit_fused(cfg, ckpt, [0.5], seed=0)
    assert ckpt.path.is_file() and not list(tmp_path.glob("*.tmp"))
    other = dataclasses.replace(cfg, fused_training=dataclasses.replace(cfg.fused_training, lr=1e-4))
    with pytest.raises(CheckpointError, match=r"fused\.pt was written with a different config.*delete it.*drop "
                                              r"--resume"):
        _fit_fused(other, Checkpoint(ckpt.path, fingerprint(other), resume=True), [0.5], seed=0)
    _fit_fused(other, Checkpoint(ckpt.path, fingerprint(other)), [0.5], seed=0)  # without resume: a fresh run
    assert torch.load(ckpt.path, weights_only=True)["fingerprint"] == fingerprint(other)


def test_fresh_run_removes_old_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "audio.pt").write_bytes(b"old")
    assert (tmp_path / "audio.pt").is_file() and run_checkpoints(tmp_path, ["audio"], "h", resume=True)
    ckpts = run_checkpoints(tmp_path, ["audio", "text"], "h", resume=False)
    assert not (tmp_path / "audio.pt").exists() and ckpts["text"].path == tmp_path / "text.pt"
    # An ensemble's members checkpoint beside the branch's own file; a fresh run deletes theirs too.
    (tmp_path / "audio_2.pt").write_bytes(b"old")
    assert ckpts["audio"].member(0) is ckpts["audio"]
    assert ckpts["audio"].member(2).path == tmp_path / "audio_2.pt" and not (tmp_path / "audio_2.pt").exists()
    (tmp_path / "audio_2.pt").write_bytes(b"kept")
    resumed = Checkpoint(tmp_path / "audio.pt", "h", resume=True).member(2)
    assert resumed.resume and (tmp_path / "audio_2.pt").read_bytes() == b"kept"


def test_emo_train_resume_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI end to end on a tiny manifest: --resume after a finished run retrains nothing and exports the same
    bundle; a changed config with --resume is one line on stderr, exit 1."""
    torch.set_num_threads(1)
    config, data = tiny_manifest_config(tmp_path, "tiny-resume", (12, 6, 6), "CC0", epochs=2, patience=2,
                                        calibrate=False)
    reports = tmp_path / "reports"
    args = ["--config", str(config), "--reports", str(reports), "--cache", str(tmp_path / "cache"), "--device", "cpu"]
    assert train_main([*args, "--out", str(tmp_path / "first")]) == 0
    assert (reports / "checkpoints" / "fused.pt").is_file()
    assert train_main([*args, "--out", str(tmp_path / "again"), "--resume"]) == 0
    assert "not retrained" in (reports / "train.log").read_text()
    first, again = (load_file(tmp_path / d / "model.safetensors") for d in ("first", "again"))
    assert _states_equal(first, again)

    data["fused_training"]["lr"] = 1e-4
    config.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert train_main([*args, "--out", str(tmp_path / "third"), "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the log lines
    assert err.startswith(f"emo-train: error: checkpoint {reports / 'checkpoints' / 'fused.pt'} was written with a "
                          "different config") and err.endswith("drop --resume")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (mixed precision is CUDA only)")
@pytest.mark.parametrize("loop", ["fused", "branch"])
def test_mixed_precision_on_cuda(loop: str, tmp_path: Path) -> None:
    ckpt = Checkpoint(tmp_path / f"{loop}.pt", "cuda test")
    if loop == "fused":
        cfg = _fused_cfg("melcnn_bigru", 2, 2)
        torch.manual_seed(0)
        model = build_model(cfg.model.architecture, cfg.dims(), cfg.model.hparams)
        items, y = _items(cfg.dims(), 12)
        run = fit_fused(model, cfg, lambda: [Group(items, y, None, True)],
                        lambda: (float(predict(model, items)[np.arange(12), y].mean()), {}),
                        np.random.default_rng(0), ckpt=ckpt, device="cuda")
        loss = run["train_loss"]
    else:
        cfg = load_config(REPO_ROOT / "configs" / "baseline.yaml")
        torch.manual_seed(0)
        model = build_model(cfg.model.architecture, cfg.dims(), cfg.model.hparams)
        items, y = _items(cfg.dims(), 20)
        at = dataclasses.replace(cfg.text_training, epochs=2, batch_size=8)
        result = fit_branch(model, "text", items, y, lambda: float(np.exp(predict(model, items)).max()), at, 0,
                            ckpt=ckpt, device="cuda")
        loss = result.train_loss
    assert math.isfinite(loss)
    saved = torch.load(ckpt.path, weights_only=True)
    assert saved["scaler"]["scale"] > 0 and "cuda" in saved["rng"]  # the gradient scaler was on, and saved
    assert all(v.device.type == "cpu" for v in model.state_dict().values())  # back on the CPU for export
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.dtype.is_floating_point)
