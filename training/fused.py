"""Fused training of a whole architecture on label-matched pairs (docs/training.md, "Fusion without a paired
corpus").

Every epoch: each training clip of the config's audio corpora (RAVDESS and, where named, EmoDB and nEMO) is paired
with a training utterance of the same label from its text corpora (MELD and, where named, GoEmotions), drawn afresh
(the text keeps its real past-only dialogue context). A share ``neutral_text`` of the pairs whose clip has its own
English words (RAVDESS's fixed statements) get those as text instead, so that the model learns to fall back on the
audio when the words carry no emotion; EmoDB has no transcript and nEMO's is Polish, and the live ASR is English, so
those clips are never heard with their own words. Each clip is heard in one of the config's renderings (a phone
line...; training/renderings.py), modality dropout (``drop_modalities``) teaches each modality alone, and
``text_only`` training utterances of each text corpus are added text-only, so that the text side sees every text
corpus's real label distribution.
Early stopping on the mean of four dev scores, each the mean over corpora of the corpus's own metric with the argmax
restricted to its classes (``per_corpus_score``): dev-speaker clips paired with dev text (fused), the clips' audio
alone, the clips with their own words (where any have them), the text corpora's dev splits alone. The stream meets
all four situations. Test splits are scored only after training, on the exported bundle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emostream.models.bundle import save_bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import EmotionModel, drop_modalities
from emostream.models.labels import LABELS
from emostream.models.speaker_norm import SpeakerPrior
from emostream.training.augment import augment_audio
from emostream.training.batching import dialogue_inputs, label_array, predict
from emostream.training.cache import audio_frames, text_features
from emostream.training.config import TrainConfig
from emostream.training.corpora import load_corpora, load_more, merged, per_corpus_score
from emostream.training.data.manifest import load_manifest
from emostream.training.data.records import Utterance
from emostream.training.data_card import fused_data_card
from emostream.training.evaluate import evaluate
from emostream.training.loop import Checkpoint, Loop, fingerprint, run_checkpoints
from emostream.training.manifest_inputs import manifest_frames, manifest_inputs
from emostream.training.metrics import scores, summary
from emostream.training.model_card import fused_model_card, manifest_model_card
from emostream.training.pairs import match_labels, paired_inputs
from emostream.training.renderings import renderings
from emostream.training.runs import TrainingRun, class_weights, export_bundle, new_model
from emostream.training.speaker_frames import normalised_splits
from emostream.training.temperature import calibrate_output

log = logging.getLogger(__name__)


def audio_only(inputs: list[UtteranceInput]) -> list[UtteranceInput]:
    return [replace(x, sentence=None, tokens=None, context=()) for x in inputs]


@contextmanager
def frozen_norm_stats(model: nn.Module, active: bool = True) -> Iterator[None]:
    """Batch-norm layers in eval mode for the duration: a batch without any audio (text-only MELD) runs the audio
    layers on zero padding, and in train mode that padding would drag their running statistics (what inference
    normalises with) toward zeros."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training] \
        if active else []
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


@dataclass
class Group:
    """Training items of one kind for an epoch: ``pairs`` get audio augmentation and modality dropout."""

    items: list[UtteranceInput]
    y: np.ndarray
    weight: torch.Tensor | None
    pairs: bool


def fit_fused(model: EmotionModel, cfg: TrainConfig, epoch_groups: Callable[[], list[Group]],
              dev_score: Callable[[], tuple[float, dict[str, float]]], rng: np.random.Generator,
              ckpt: Checkpoint | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The training loop shared by label-matched pairs and real paired manifests: AdamW on cross-entropy (plus the
    architecture's ``regularization()`` if it has one), batches never mixing groups, early stopping on
    ``dev_score`` with the best weights restored; stops early at ``max_minutes``.

    ``rng`` also drives ``epoch_groups`` (it is checkpointed with the rest). ``ckpt``: checkpoint after every
    epoch, and resume from it (training/loop.py). The model trains on ``device`` and comes back on the CPU.
    """
    ft = cfg.fused_training
    assert ft is not None
    device = torch.device(device)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=ft.lr, weight_decay=ft.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    regularization = getattr(model, "regularization", None)  # e.g. cbla_bilstm's L2 term of its dense layers
    loop = Loop(f"fused {cfg.model.architecture}", model, model, opt, gen, ft.epochs, ft.patience, device, ft.amp,
                rng=rng, ckpt=ckpt)
    bar = loop.start()
    for epoch in bar:
        model.train()
        groups = epoch_groups()
        order = [(g, chunk) for g, group in enumerate(groups)
                 for chunk in np.array_split(rng.permutation(len(group.items)),
                                             max(1, -(-len(group.items) // ft.batch_size)))
                 if len(chunk)]
        total, count = 0.0, 0
        for k in rng.permutation(len(order)):
            g, idx = order[k]
            group = groups[g]
            batch = collate([group.items[i] for i in idx], model.dims)
            if group.pairs:
                batch = augment_audio(batch, cfg.features, ft.gain_db, ft.crop_min, gen)
                batch = drop_modalities(batch, ft.modality_dropout, gen)
            text_only = not bool(batch.has_audio.any())
            batch = batch.to(device)
            weight = None if group.weight is None else group.weight.to(device)
            with loop.autocast():
                with frozen_norm_stats(model, active=text_only):
                    logits = model(batch)
                loss = F.cross_entropy(logits, torch.from_numpy(group.y[idx]).to(device), weight=weight,
                                       label_smoothing=ft.label_smoothing)
                if regularization is not None:
                    loss = loss + regularization()
            loop.step(loss, ft.clip_grad)
            total, count = total + loss.item() * len(idx), count + len(idx)
        dev, parts = dev_score()
        log.info("epoch %d: train loss %.4f, dev %.4f (%s)", epoch, total / count, dev,
                 ", ".join(f"{k} {v:.3f}" for k, v in parts.items()))
        bar.set_postfix(loss=f"{total / count:.3f}", dev=f"{dev:.3f}", best=f"{max(loop.best, dev):.3f}")
        if loop.end_epoch(dev, total / count, parts, ft.max_minutes):
            break
    loop.finish()
    model.eval()
    return {"best_epoch": loop.best_epoch, "best_dev": loop.best, "dev_parts": loop.best_parts,
            "epochs_run": loop.epoch, "stopped_by_budget": loop.stopped_by_budget, "train_loss": loop.loss}


def own_words(u: Utterance) -> bool:
    """Whether a clip's own transcript can be its text: English words, which the live (English) ASR could hear."""
    return bool(u.text) and u.language == "en"


@dataclass
class PairsRun:
    """What ``fit_pairs`` leaves besides the trained model."""

    prior: SpeakerPrior | None  # the speaker prior the audio was normalised with (None: no normalisation)
    run: dict[str, Any]  # fit_fused's summary
    dev_inputs: list[UtteranceInput]  # the dev sets an output temperature is fitted on: pairs, audio, text alone
    dev_y: np.ndarray


def fit_pairs(cfg: TrainConfig, model: EmotionModel, heard: dict[str, list[Utterance]],
              read: dict[str, list[Utterance]], cache_dir: Path, ckpt: Checkpoint | None,
              device: torch.device | str) -> PairsRun:
    """Trains ``model`` on label-matched pairs of the clips ``heard["train"]`` (audio corpora) and the utterances
    ``read["train"]`` (text corpora), early-stopped on their "dev" splits, as the module docstring says."""
    ft = cfg.fused_training
    assert ft is not None, "fit_pairs needs a fused_training section"
    dims = model.dims
    spoken = {k: [u if own_words(u) else replace(u, text="") for u in v] for k, v in heard.items()}
    sentences, tokens = text_features([u.text for s in (*read.values(), *spoken.values()) for u in s],
                                      cfg.text_encoder, cache_dir)
    raw = {k: audio_frames([u.audio for u in v if u.audio], cfg.features, cfg.vad, cache_dir) for k, v in heard.items()}
    prior, frames = normalised_splits(raw, heard, cfg.speaker_norm_frames)
    norm = getattr(model, "norm", None)
    if norm is not None:
        train_frames = torch.cat(frames["train"])
        norm.fit(train_frames.unsqueeze(0), torch.ones(1, len(train_frames), dtype=torch.bool))
        del train_frames
    views = list(renderings(cfg, ft, heard["train"], raw["train"], prior, cache_dir))
    views.insert(0, (1.0 - sum(p for p, _ in views), frames["train"]))  # the clean steady state keeps the rest
    del raw

    text_in = {k: dialogue_inputs(v, sentences, dims, tokens=tokens) for k, v in read.items()}
    own_in = {k: dialogue_inputs(v, sentences, dims, audio=frames[k], tokens=tokens) for k, v in spoken.items()}
    y_audio = {k: label_array(v, LABELS) for k, v in heard.items()}
    y_text = {k: label_array(v, LABELS) for k, v in read.items()}

    a_dev, t_dev = match_labels(y_audio["dev"], y_text["dev"], np.random.default_rng(cfg.seed), per_clip=2)
    with_words = [i for i, u in enumerate(spoken["dev"]) if u.text]
    dev_sets = {
        "pairs_fused": (paired_inputs(frames["dev"], text_in["dev"], a_dev, t_dev), [heard["dev"][i] for i in a_dev]),
        "audio": (audio_only(own_in["dev"]), heard["dev"]),
        "own_words_fused": ([own_in["dev"][i] for i in with_words], [heard["dev"][i] for i in with_words]),
        "text": (text_in["dev"], read["dev"]),
    }
    dev_sets = {name: (inputs, utts) for name, (inputs, utts) in dev_sets.items() if utts}  # e.g. no English clip

    def dev_score() -> tuple[float, dict[str, float]]:
        parts = {name: per_corpus_score(utts, predict(model, inputs), LABELS)
                 for name, (inputs, utts) in dev_sets.items()}
        return float(np.mean(list(parts.values()))), parts

    w_pair = class_weights(y_audio["train"], dims.num_classes, ft.class_weighting)
    w_text = class_weights(y_text["train"], dims.num_classes, ft.text_class_weighting)
    text_corpora = [u.corpus for u in read["train"]]
    by_corpus = [np.flatnonzero(np.array(text_corpora) == c) for c in dict.fromkeys(text_corpora)]
    has_words = np.array([bool(u.text) for u in spoken["train"]])
    p_view = np.array([p for p, _ in views]).clip(min=0.0)
    rng = np.random.default_rng(cfg.seed)

    def epoch_groups() -> list[Group]:
        heard_as = rng.choice(len(views), size=len(has_words), p=p_view / p_view.sum())  # each clip's rendering
        audio = [views[v][1][i] for i, v in enumerate(heard_as)]
        a_idx, t_idx = match_labels(y_audio["train"], y_text["train"], rng)
        own = (rng.random(len(a_idx)) < ft.neutral_text) & has_words[a_idx]
        matched = paired_inputs(audio, text_in["train"], a_idx, t_idx)
        pairs = [replace(own_in["train"][i], audio=audio[i]) if own[k] else matched[k] for k, i in enumerate(a_idx)]
        text_pick = np.concatenate([rng.choice(idx, size=min(ft.text_only, len(idx)), replace=False)
                                    for idx in by_corpus])
        return [Group(pairs, y_audio["train"][a_idx], w_pair, True),
                Group([text_in["train"][i] for i in text_pick], y_text["train"][text_pick], w_text, False)]

    run = fit_fused(model, cfg, epoch_groups, dev_score, rng, ckpt=ckpt, device=device)
    calibration = [dev_sets[k] for k in ("pairs_fused", "audio", "text") if k in dev_sets]
    return PairsRun(prior, run, [x for inputs, _ in calibration for x in inputs],
                    label_array([u for _, utts in calibration for u in utts], LABELS))


def run_fused_training(cfg: TrainConfig, data_dir: Path, out: Path, cache_dir: Path, reports: Path,
                       every: int = 1, resume: bool = False, device: torch.device | str = "cpu") -> TrainingRun:
    """Trains ``cfg.model`` jointly on the config's audio and text corpora (``fit_pairs``), exports the bundle to
    ``out``, scores it on the held-out test splits (MELD, RAVDESS, the label-matched pairs, every further corpus).

    ``every`` > 1 keeps every n-th dialogue/clip of each split (smoke runs; the data card says so). The loop's
    checkpoint goes to ``reports/checkpoints/fused.pt``; ``resume`` continues from it."""
    ft = cfg.fused_training
    assert ft is not None and cfg.splits is not None, "run_fused_training needs fused_training and splits"
    t0 = time.time()
    ckpt = run_checkpoints(reports / "checkpoints", ("fused",), fingerprint(cfg, every), resume)["fused"]
    meld, rav = load_corpora(cfg, data_dir, every)
    audio_more, text_more = load_more(cfg.audio_corpora, data_dir, every), load_more(cfg.text_corpora, data_dir, every)
    heard = {k: merged(rav, audio_more, k) for k in ("train", "dev")}
    read = {k: merged(meld, text_more, k) for k in ("train", "dev")}
    model = new_model(cfg, cfg.dims())
    fit = fit_pairs(cfg, model, heard, read, cache_dir, ckpt, device)
    temperature = None
    if ft.calibrate:
        temperature = calibrate_output(model, fit.dev_inputs, fit.dev_y)
        log.info("output temperature fitted on dev: %.3f", temperature)

    training = {"run": fit.run, "temperature": temperature, "seconds": round(time.time() - t0, 1),
                "subsample_every": every, "device": str(device)}
    more = audio_more | text_more
    bundle = export_bundle(cfg, model, fused_data_card(cfg, rav, meld, training, more), fused_model_card, out,
                           fit.prior)
    results: dict = {}
    for corpus in ("meld", "ravdess", "pairs", *more):
        results.update(evaluate(bundle, corpus, "test", data_dir, cache_dir, reports, every))
    bundle.meta.scores = {name: summary(r) for name, r in results.items()}
    save_bundle(out, model, bundle.meta, fused_model_card(bundle.meta, results))
    log.info("exported %s in %.0f s", out, time.time() - t0)
    return TrainingRun(model=model, results=results)


def run_manifest_training(cfg: TrainConfig, out: Path, cache_dir: Path, reports: Path, resume: bool = False,
                          device: torch.device | str = "cpu") -> TrainingRun:
    """Trains on your own manifests (real pairs where a row has audio and text): modality dropout, early stopping
    on dev UA of the rows as given, export, and the held-out score on the test manifest.

    The loop's checkpoint goes to ``reports/checkpoints/fused.pt``; ``resume`` continues from it."""
    m, ft = cfg.manifests, cfg.fused_training
    assert m is not None and ft is not None
    t0 = time.time()
    ckpt = run_checkpoints(reports / "checkpoints", ("fused",), fingerprint(cfg), resume)["fused"]
    dims = cfg.dims()
    utts = {k: load_manifest(Path(getattr(m, k)), corpus="manifest") for k in ("train", "dev")}
    prior = None
    if cfg.speaker_norm_frames:
        prior = SpeakerPrior.fit(manifest_frames(utts["train"], cfg.features, cfg.vad, cache_dir)[1],
                                 cfg.speaker_norm_frames)
    inputs = {k: manifest_inputs(v, cfg, cache_dir, speaker_norm=(prior, k == "train") if prior else None)
              for k, v in utts.items()}
    y = {k: label_array(v, LABELS) for k, v in utts.items()}
    log.info("manifest train %d / dev %d utterances", len(utts["train"]), len(utts["dev"]))
    model = new_model(cfg, dims)
    norm = getattr(model, "norm", None)
    train_frames = [x.audio for x in inputs["train"] if x.audio is not None]
    if norm is not None and train_frames:
        cat = torch.cat(train_frames)
        norm.fit(cat.unsqueeze(0), torch.ones(1, len(cat), dtype=torch.bool))
    weight = class_weights(y["train"], dims.num_classes, ft.class_weighting)
    rng = np.random.default_rng(cfg.seed)

    def dev_score() -> tuple[float, dict[str, float]]:
        ua = scores(y["dev"], predict(model, inputs["dev"]).argmax(1), LABELS)["unweighted_recall"]
        return ua, {"dev_ua": ua}

    run = fit_fused(model, cfg, lambda: [Group(inputs["train"], y["train"], weight, True)], dev_score, rng,
                    ckpt=ckpt, device=device)
    temperature = calibrate_output(model, inputs["dev"], y["dev"]) if ft.calibrate else None
    counts = {k: {"utterances": len(v), "labels": {lab: int((y[k] == i).sum()) for i, lab in enumerate(LABELS)}}
              for k, v in utts.items()}
    card = {"licence": m.licence, "sources": {"manifest": {"name": m.description or "own data (manifests)",
                                                           "licence": m.licence, "citation": ""}},
            "manifests": {"train": m.train, "dev": m.dev, "test": m.test, "splits": counts},
            "vad": asdict(cfg.vad), "context_size": cfg.context_size,
            "training": {"seed": cfg.seed, "fused": asdict(ft), "run": run, "temperature": temperature,
                         "seconds": round(time.time() - t0, 1), "subsample_every": 1, "device": str(device)}}
    bundle = export_bundle(cfg, model, card, manifest_model_card, out, prior)
    results = evaluate(bundle, "manifest", "test", Path(m.test).parent, cache_dir, reports, manifest=Path(m.test))
    bundle.meta.scores = {name: summary(r) for name, r in results.items()}
    save_bundle(out, model, bundle.meta, manifest_model_card(bundle.meta, results))
    log.info("exported %s in %.0f s", out, time.time() - t0)
    return TrainingRun(model=model, results=results)
