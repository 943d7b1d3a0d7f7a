"""Training loop of the tracer baseline (models/baseline.py), one branch at a time.

The audio branch learns from RAVDESS train actors (early stopping on dev actors' unweighted recall);
the text branch from MELD train with past-only dialogue context (early stopping on MELD dev weighted F1).
Test splits are only scored after both branches are fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from emostream.models.bundle import save_bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import EmotionBatch, EmotionModel
from emostream.models.labels import LABELS
from emostream.training.augment import augment_audio
from emostream.training.batching import dialogue_inputs, label_array, predict
from emostream.training.cache import audio_frames, text_features
from emostream.training.config import BranchTraining, TrainConfig
from emostream.training.corpora import load_corpora
from emostream.training.data_card import data_card
from emostream.training.evaluate import evaluate
from emostream.training.loop import Checkpoint, Loop, fingerprint, run_checkpoints
from emostream.training.metrics import scores, summary
from emostream.training.model_card import model_card
from emostream.training.runs import TrainingRun, class_weights, export_bundle, new_model
from emostream.training.speaker_frames import normalised_splits

log = logging.getLogger(__name__)
Branch = Literal["audio", "text"]


@dataclass
class BranchResult:
    best_epoch: int
    best_dev: float
    epochs_run: int
    seconds: float
    train_loss: float = float("nan")  # mean training loss of the last epoch


def fit_branch(model: EmotionModel, branch: Branch, inputs: Sequence[UtteranceInput], y: np.ndarray,
               dev_score: Callable[[], float], cfg: BranchTraining, seed: int,
               augment: Callable[[EmotionBatch, torch.Generator], EmotionBatch] | None = None,
               ckpt: Checkpoint | None = None, device: torch.device | str = "cpu") -> BranchResult:
    """Trains ``model.<branch>_head`` (and for text the model's tuned encoder layers, if it has them, at
    ``cfg.encoder_lr``) with AdamW on cross-entropy; keeps the best epoch on dev.

    ``augment`` transforms each training batch (never the dev batches), on the CPU. ``ckpt``: checkpoint after
    every epoch, and resume from it (training/loop.py). The model trains on ``device`` and comes back on the CPU.
    """
    torch.manual_seed(seed)  # dropout draws of a branch do not depend on how long the other branch trained
    device = torch.device(device)
    head: torch.nn.Module = getattr(model, f"{branch}_head")
    groups = [{"params": head.parameters(), "lr": cfg.lr}]
    tuned = getattr(model, "text_top", None) if branch == "text" else None
    if tuned is not None:  # the encoder's top layers learn with the text head (models/text_top.py)
        groups.append({"params": tuned.parameters(), "lr": cfg.encoder_lr})
        head = torch.nn.ModuleList([head, tuned])
    model.to(device)
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    weight = class_weights(y, model.dims.num_classes, cfg.class_weighting)
    weight = None if weight is None else weight.to(device)
    targets = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    loop = Loop(f"{branch} branch", model, head, opt, gen, cfg.epochs, cfg.patience, device, cfg.amp, ckpt=ckpt)
    bar = loop.start()
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(inputs), generator=gen)
        total = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            batch = collate([inputs[j] for j in idx], model.dims)
            batch = (augment(batch, gen) if augment else batch).to(device)
            with loop.autocast():
                audio_logits, text_logits = model.branch_logits(batch)
                loss = F.cross_entropy(audio_logits if branch == "audio" else text_logits, targets[idx].to(device),
                                       weight=weight, label_smoothing=cfg.label_smoothing)
            loop.step(loss)
            total += loss.item() * len(idx)
        dev = dev_score()
        bar.set_postfix(loss=f"{total / len(perm):.3f}", dev=f"{dev:.3f}", best=f"{max(loop.best, dev):.3f}")
        log.info("%s epoch %d: train loss %.4f, dev %.4f", branch, epoch, total / len(perm), dev)
        if loop.end_epoch(dev, total / len(perm)):
            break
    loop.finish()
    return BranchResult(best_epoch=loop.best_epoch, best_dev=loop.best, epochs_run=loop.epoch, seconds=loop.seconds(),
                        train_loss=loop.loss)



def run_training(cfg: TrainConfig, data_dir: Path, out: Path, cache_dir: Path, reports: Path,
                 every: int = 1, resume: bool = False, device: torch.device | str = "cpu") -> TrainingRun:
    """Trains both branches, exports the bundle to ``out``, scores it on the held-out test splits.

    ``every`` > 1 keeps every n-th dialogue/clip of each split (smoke runs; the data card says so).
    The test results are also written as reports under ``reports``, each branch's checkpoint under
    ``reports/checkpoints`` (``resume``: continue from them; a finished branch is not retrained).
    """
    t0 = time.time()
    ckpts = run_checkpoints(reports / "checkpoints", ("audio", "text"), fingerprint(cfg, every), resume)
    dims = cfg.dims()
    meld, rav = load_corpora(cfg, data_dir, every)

    texts = [u.text for s in meld.values() for u in s]
    sentences, tokens = text_features(texts, cfg.text_encoder, cache_dir)
    prior, frames = normalised_splits({k: audio_frames([u.audio for u in v if u.audio], cfg.features, cfg.vad,
                                                       cache_dir) for k, v in rav.items() if k != "test"},
                                      rav, cfg.speaker_norm_frames)

    model = new_model(cfg, dims)  # seeded here, so that results do not depend on whether the caches were warm
    train_frames = torch.cat(frames["train"])
    model.norm.fit(train_frames.unsqueeze(0), torch.ones(1, len(train_frames), dtype=torch.bool))

    audio_in = {k: dialogue_inputs(rav[k], {}, dims, audio=frames[k], use_text=False) for k in frames}
    y_dev_audio = label_array(rav["dev"], LABELS)

    def audio_dev() -> float:
        pred = predict(model, audio_in["dev"]).argmax(1)
        return scores(y_dev_audio, pred, LABELS)["unweighted_recall"]

    at = cfg.audio_training
    assert at is not None and cfg.text_training is not None, "branch-wise training needs both branch sections"
    audio = fit_branch(model, "audio", audio_in["train"], label_array(rav["train"], LABELS), audio_dev, at, cfg.seed,
                       augment=lambda b, g: augment_audio(b, cfg.features, at.gain_db, at.crop_min, g),
                       ckpt=ckpts["audio"], device=device)

    text_in = {k: dialogue_inputs(v, sentences, dims, tokens=tokens) for k, v in meld.items()}
    y_dev_text = label_array(meld["dev"], LABELS)

    def text_dev() -> float:
        return scores(y_dev_text, predict(model, text_in["dev"]).argmax(1), LABELS)["weighted_f1"]

    text = fit_branch(model, "text", text_in["train"], label_array(meld["train"], LABELS), text_dev,
                      cfg.text_training, cfg.seed, ckpt=ckpts["text"], device=device)

    training = {"audio_run": asdict(audio), "text_run": asdict(text), "seconds": round(time.time() - t0, 1),
                "subsample_every": every, "device": str(device)}
    bundle = export_bundle(cfg, model, data_card(cfg, rav, meld, training), model_card, out, prior)
    results = {**evaluate(bundle, "meld", "test", data_dir, cache_dir, reports, every),
               **evaluate(bundle, "ravdess", "test", data_dir, cache_dir, reports, every)}
    bundle.meta.scores = {name: summary(r) for name, r in results.items()}
    save_bundle(out, model, bundle.meta, model_card(bundle.meta, results))
    log.info("exported %s in %.0f s", out, time.time() - t0)
    return TrainingRun(model=model, results=results)
