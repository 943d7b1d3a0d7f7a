"""Training loop of the tracer baseline (models/baseline.py), one branch at a time.

The audio branch learns from the training speakers of the config's audio corpora (RAVDESS train actors and, where
named, EmoDB and nEMO speakers; early stopping on their dev speakers' unweighted recall); the text branch from the
training splits of its text corpora (MELD, and GoEmotions or DailyDialog where named) with past-only dialogue
context (early stopping on MELD dev weighted F1 and the others' macro F1). A branch that is a deep ensemble
(hparams audio_members, text_members) trains one member at a time, member i as the recipe with seed + i. Test
splits are only scored after both branches are fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from emostream.models.baseline import AUDIO_HPARAMS, TEXT_HPARAMS
from emostream.models.bundle import save_bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.models.features import FeatureSpec
from emostream.models.interface import EmotionBatch, EmotionModel
from emostream.models.labels import LABELS
from emostream.models.speaker_norm import SpeakerPrior
from emostream.stream.stages.vad import VadConfig
from emostream.training.augment import augment_audio
from emostream.training.batching import dialogue_inputs, label_array, predict
from emostream.training.cache import audio_frames, text_features
from emostream.training.config import BranchTraining, TrainConfig
from emostream.training.corpora import load_corpora, load_more, merged, per_corpus_score
from emostream.training.data.records import Utterance
from emostream.training.data_card import data_card
from emostream.training.evaluate import evaluate
from emostream.training.loop import Checkpoint, Loop, fingerprint, run_checkpoints
from emostream.training.metrics import summary
from emostream.training.model_card import model_card
from emostream.training.renderings import renderings
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
    # An ensemble's members' own runs (models/blocks.py HeadEnsemble); then best_dev is the ensemble's dev score,
    # best_epoch the latest of the members' best epochs, epochs_run and seconds their sums.
    members: list[dict[str, Any]] = field(default_factory=list)


def fit_branch(model: EmotionModel, branch: Branch, inputs: Sequence[UtteranceInput], y: np.ndarray,
               dev_score: Callable[[], float], cfg: BranchTraining, seed: int,
               augment: Callable[[EmotionBatch, torch.Generator], EmotionBatch] | None = None,
               ckpt: Checkpoint | None = None, device: torch.device | str = "cpu",
               views: Sequence[tuple[float, Sequence[UtteranceInput]]] = (),
               corpus_of: Sequence[str] | None = None) -> BranchResult:
    """Trains ``model.<branch>_head`` (with, for audio, its learned frame pooling if it has one, and for text its
    tuned encoder layers if it has them, at ``cfg.encoder_lr``) with AdamW on cross-entropy; keeps the best epoch
    on dev.

    ``augment`` transforms each training batch (never the dev batches), on the CPU. Each ``(p, view)`` of ``views``
    is another rendering of the inputs (``view[j]`` of ``inputs[j]``: the clip through a phone line, normalised as
    a speaker's first words...), drawn instead of ``inputs[j]`` with probability ``p``.
    ``corpus_of[j]`` names the corpus of ``inputs[j]``, for ``cfg.per_corpus`` and ``cfg.per_corpus_of``
    (examples per corpus per epoch).
    ``ckpt``: checkpoint after every epoch, and resume from it (training/loop.py). The model trains on ``device``
    and comes back on the CPU. An ensemble head within its ``only(i)`` trains member i alone (the others keep their
    weights).
    """
    torch.manual_seed(seed)  # dropout draws of a branch do not depend on how long the other branch trained
    device = torch.device(device)
    head: torch.nn.Module = getattr(model, f"{branch}_head")
    head = getattr(head, "answering", head)  # an ensemble within only(i): that member alone
    tuned = getattr(head, "top", None)
    if tuned is None:
        groups = [{"params": list(head.parameters()), "lr": cfg.lr}]
    else:  # the encoder's top layers learn with the text head, slower (models/text_top.py)
        mine = {id(p) for p in tuned.parameters()}
        groups = [{"params": [p for p in head.parameters() if id(p) not in mine], "lr": cfg.lr},
                  {"params": list(tuned.parameters()), "lr": cfg.encoder_lr}]
    parts = [head]
    pool = getattr(model, "frame_pool", None) if branch == "audio" else None
    if pool is not None:  # a learned pooling of the frames learns with the audio head
        groups.append({"params": pool.parameters(), "lr": cfg.lr})
        parts.append(pool)
    if len(parts) > 1:
        head = torch.nn.ModuleList(parts)
    model.to(device)
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    weight = class_weights(y, model.dims.num_classes, cfg.class_weighting)
    weight = None if weight is None else weight.to(device)
    targets = torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    renderings = [inputs, *(v for _, v in views)]
    p_view = torch.tensor([1.0 - sum(p for p, _ in views), *(p for p, _ in views)]).clamp(min=0.0)
    loop = Loop(f"{branch} branch", model, head, opt, gen, cfg.epochs, cfg.patience, device, cfg.amp, ckpt=ckpt)
    bar = loop.start()
    for epoch in bar:
        # Only what trains is in training mode: the other branch runs too (branch_logits answers both), and its
        # dropout would draw from the generator this branch's dropout draws from, so one branch's training would
        # depend on the other branch's structure (its members, its layers).
        model.eval()
        head.train()
        perm = epoch_order(len(inputs), gen, corpus_of, cfg.per_corpus, cfg.per_corpus_of)
        total = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if views:
                pick = torch.multinomial(p_view, len(idx), replacement=True, generator=gen).tolist()
                chosen = [renderings[v][j] for j, v in zip(idx.tolist(), pick, strict=True)]
            else:
                chosen = [inputs[j] for j in idx]
            batch = collate(chosen, model.dims)
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



def epoch_order(n: int, gen: torch.Generator, corpus_of: Sequence[str] | None, per_corpus: int,
                per_corpus_of: dict[str, int] | None = None) -> torch.Tensor:
    """The examples of one epoch in random order: all of them, or at most ``per_corpus`` (``per_corpus_of[name]``
    where given; 0: all) drawn from each corpus."""
    if corpus_of is None or not (per_corpus or per_corpus_of):
        return torch.randperm(n, generator=gen)
    picks = []
    for name in dict.fromkeys(corpus_of):
        idx = torch.tensor([j for j, c in enumerate(corpus_of) if c == name])
        limit = (per_corpus_of or {}).get(name, per_corpus)
        picks.append(idx[torch.randperm(len(idx), generator=gen)[: limit or len(idx)]])
    chosen = torch.cat(picks)
    return chosen[torch.randperm(len(chosen), generator=gen)]


def fit_audio(cfg: TrainConfig, model: EmotionModel, heard: dict[str, list[Utterance]], cache_dir: Path,
              ckpt: Checkpoint | None, device: torch.device | str) -> tuple[SpeakerPrior | None, BranchResult]:
    """The audio branch (and its input statistics) on ``heard["train"]``, early-stopped on ``heard["dev"]``; the
    speaker prior it was trained with (None without speaker normalisation)."""
    at = cfg.audio_training
    assert at is not None, "branch-wise training needs an audio_training section"
    dims, train = model.dims, heard["train"]
    raw = {k: audio_frames([u.audio for u in v if u.audio], cfg.features, cfg.vad, cache_dir) for k, v in heard.items()}
    prior, frames = normalised_splits(raw, heard, cfg.speaker_norm_frames)
    train_frames = torch.cat(frames["train"])
    model.norm.fit(train_frames.unsqueeze(0), torch.ones(1, len(train_frames), dtype=torch.bool))
    del train_frames
    summarise = getattr(model, "summarise", None)
    if summarise is None or getattr(model, "frame_pool", None) is not None or at.crop_min < 1 or at.gain_db:
        summarise = None  # a learned pooling or an augmentation needs every frame

    def inputs_of(utts: list[Utterance], rendered: list[torch.Tensor], store: bool = False) -> list[UtteranceInput]:
        audio = rendered if summarise is None else [summarise(f) for f in rendered]
        if store and summarise is None:  # every frame of every rendering: float16 halves what they hold
            audio = [f.half() for f in audio]
        return dialogue_inputs(utts, {}, dims, audio=audio, use_text=False)

    inputs = {k: inputs_of(heard[k], v) for k, v in frames.items()}
    del frames

    def dev() -> float:
        return per_corpus_score(heard["dev"], predict(model, inputs["dev"]), LABELS)

    def fit_one(i: int, member: torch.nn.Module) -> BranchResult:
        seeded = replace(cfg, seed=cfg.seed + i)
        if i:
            redraw(member, seeded.seed)
        # The other renderings of each training clip (training/renderings.py), summarised as they come.
        views = [(p, inputs_of(train, rendered, store=True))
                 for p, rendered in renderings(seeded, at, train, raw["train"], prior, cache_dir)]
        return fit_branch(model, "audio", inputs["train"], label_array(train, LABELS), dev, at, seeded.seed,
                          augment=lambda b, g: augment_audio(b, cfg.features, at.gain_db, at.crop_min, g),
                          ckpt=ckpt.member(i) if ckpt else None, device=device, views=views,
                          corpus_of=[u.corpus for u in train])

    return prior, fit_members(model.audio_head, fit_one, dev)


def fit_members(head: torch.nn.Module, fit: Callable[[int, torch.nn.Module], BranchResult],
                dev: Callable[[], float]) -> BranchResult:
    """``fit(i, member)`` for every member of an ensemble head (hparams audio_members, text_members), each within
    the head's ``only(i)``, or ``fit(0, head)`` for a single head. Member i is what the recipe trains with seed + i
    (its own initial weights, renderings, batch order and early stopping), so member 0 is the single head's run."""
    members = getattr(head, "members", None)
    if members is None:
        return fit(0, head)
    runs = []
    for i, member in enumerate(members):
        with head.only(i):
            runs.append(fit(i, member))
    return BranchResult(best_epoch=max(r.best_epoch for r in runs), best_dev=dev(),
                        epochs_run=sum(r.epochs_run for r in runs), seconds=sum(r.seconds for r in runs),
                        train_loss=float(np.mean([r.train_loss for r in runs])), members=[asdict(r) for r in runs])


def redraw(module: torch.nn.Module, seed: int) -> None:
    """``module``'s layers initialised afresh, as a model built after ``torch.manual_seed(seed)`` draws them (in
    their order), without moving the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in module.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()


def fit_text(cfg: TrainConfig, model: EmotionModel, read: dict[str, list[Utterance]],
             sentences: dict[str, torch.Tensor], tokens: dict[str, torch.Tensor] | None, ckpt: Checkpoint | None,
             device: torch.device | str) -> BranchResult:
    """The text branch on ``read["train"]`` with past-only context, early-stopped on ``read["dev"]``; an ensemble
    (hparam text_members) one member at a time, each member's tuned layers starting from the encoder's weights."""
    assert cfg.text_training is not None, "branch-wise training needs a text_training section"
    inputs = {k: dialogue_inputs(v, sentences, model.dims, tokens=tokens) for k, v in read.items()}

    def dev() -> float:
        return per_corpus_score(read["dev"], predict(model, inputs["dev"]), LABELS)

    def fit_one(i: int, branch: torch.nn.Module) -> BranchResult:
        if i:
            redraw(branch.mlp, cfg.seed + i)  # its tuned layers keep the encoder's weights (models/text_top.py)
        return fit_branch(model, "text", inputs["train"], label_array(read["train"], LABELS), dev, cfg.text_training,
                          cfg.seed + i, ckpt=ckpt.member(i) if ckpt else None, device=device,
                          corpus_of=[u.corpus for u in read["train"]])

    return fit_members(model.text_head, fit_one, dev)


def branch_fingerprints(cfg: TrainConfig, every: int) -> dict[str, str]:
    """Each branch's checkpoint fingerprint. Neither branch depends on the other's settings (each reseeds, each
    checkpoint holds its own weights; the text never hears the acoustic front end or the VAD), nor on the bundle's
    name: a run that changes only one branch's settings, or renames the bundle, resumes the other, finished branch."""
    audio_model = replace(cfg.model, hparams={k: v for k, v in cfg.model.hparams.items() if k not in TEXT_HPARAMS})
    audio_only = replace(cfg, text_training=None, text_corpora=[], bundle_id="", model=audio_model)
    text_model = replace(cfg.model, hparams={k: v for k, v in cfg.model.hparams.items() if k not in AUDIO_HPARAMS})
    text_only = replace(cfg, audio_training=None, audio_corpora=[], speaker_norm_frames=0.0, bundle_id="",
                        features=FeatureSpec(), vad=VadConfig(), model=text_model)
    return {"audio": fingerprint(audio_only, every), "text": fingerprint(text_only, every)}


def run_training(cfg: TrainConfig, data_dir: Path, out: Path, cache_dir: Path, reports: Path,
                 every: int = 1, resume: bool = False, device: torch.device | str = "cpu") -> TrainingRun:
    """Trains both branches, exports the bundle to ``out``, scores it on the held-out test splits.

    The audio branch learns from the training speakers of every audio corpus the config names (RAVDESS first),
    the text branch from the training split of every text corpus (MELD first); each early-stops on the mean of its
    corpora's dev metrics (``per_corpus_score``). ``every`` > 1 keeps every n-th dialogue/clip of each split (smoke
    runs; the data card says so). The test results are also written as reports under ``reports``, each branch's
    checkpoint under ``reports/checkpoints`` (``resume``: continue from them; a finished branch is not retrained, and
    the audio branch's checkpoint survives changes of the text settings).
    """
    t0 = time.time()
    prints = branch_fingerprints(cfg, every)
    ckpts = (run_checkpoints(reports / "checkpoints", ("audio",), prints["audio"], resume)
             | run_checkpoints(reports / "checkpoints", ("text",), prints["text"], resume))
    dims = cfg.dims()
    meld, rav = load_corpora(cfg, data_dir, every)
    audio_more, text_more = load_more(cfg.audio_corpora, data_dir, every), load_more(cfg.text_corpora, data_dir, every)
    heard = {k: merged(rav, audio_more, k) for k in ("train", "dev")}
    read = {k: merged(meld, text_more, k) for k in ("train", "dev")}

    sentences, tokens = text_features([u.text for s in read.values() for u in s], cfg.text_encoder, cache_dir)
    model = new_model(cfg, dims)  # seeded here, so that results do not depend on whether the caches were warm
    prior, audio = fit_audio(cfg, model, heard, cache_dir, ckpts["audio"], device)
    text = fit_text(cfg, model, read, sentences, tokens, ckpts["text"], device)
    training = {"audio_run": asdict(audio), "text_run": asdict(text), "seconds": round(time.time() - t0, 1),
                "subsample_every": every, "device": str(device)}
    card = data_card(cfg, rav, meld, training, audio_more | text_more)
    bundle = export_bundle(cfg, model, card, model_card, out, prior)
    results = {**evaluate(bundle, "meld", "test", data_dir, cache_dir, reports, every),
               **evaluate(bundle, "ravdess", "test", data_dir, cache_dir, reports, every)}
    for name in [*audio_more, *text_more]:
        results |= evaluate(bundle, name, "test", data_dir, cache_dir, reports, every)
    bundle.meta.scores = {name: summary(r) for name, r in results.items()}
    save_bundle(out, model, bundle.meta, model_card(bundle.meta, results))
    log.info("exported %s in %.0f s", out, time.time() - t0)
    return TrainingRun(model=model, results=results)
