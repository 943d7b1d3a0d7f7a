"""Leave-one-corpus-out evaluation: how the config's recipe does on a corpus it never heard or read.

For each corpus of the config's audio corpora in turn, the audio branch is trained on the training speakers of the
others (early stopping and model choice on their dev speakers) and scored on the left-out corpus whole: clean,
every clip as its speaker's first words in a stream ("first"), and through a simulated phone line; likewise the
text branch over the text corpora (scored on the left-out corpus's test split). The left-out corpus's clean scores
are also split by its own speakers: ``choice`` (the speakers outside its test split) is what recipes are chosen
by, ``test`` (its test speakers) is read by no choice, so a recipe picked on the corpora left out is still scored
on voices that picked nothing. A fused recipe (a seed
architecture, training/fused.py) trains the whole model in each fold, on the other corpora of the left-out
modality paired with every corpus of the other modality, and is scored by the left-out modality alone (its dev
column is the fused early-stopping mean). The dev column and the left-out corpora's ``choice`` rows are what recipes are
chosen by; the ``test`` rows and the text folds' test splits are never used to choose.
``--set KEY=VALUE`` scores a variant of the recipe (``--set model.hparams.audio_pool=attentive``), or its text
branch over other corpora than the config reads (``--set 'text_corpora=[meld, goemotions, dailydialog]'``: each
of the three left out in turn).
Writes ``<out>/cross_corpus.json``, a confusion PNG per condition and the markdown table ``<out>/table.md``.

    python -m emostream.training.cross_corpus --config configs/multicorpus.yaml --out docs/results/cross_corpus
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emostream.models.interface import EmotionModel
from emostream.models.labels import LABELS
from emostream.models.speaker_norm import SpeakerPrior
from emostream.models.whisper_states import PRECISIONS, Precision
from emostream.training.batching import dialogue_inputs, label_array, predict
from emostream.training.cache import audio_frames, text_features
from emostream.training.config import TrainConfig, load_config
from emostream.training.corpora import Splits, load_more, merged
from emostream.training.corpus_scores import corpus_scores, headline
from emostream.training.data.registry import CORPORA
from emostream.training.fused import fit_pairs
from emostream.training.metrics import plot_confusion
from emostream.training.options import add_data_options, add_override_option
from emostream.training.paths import default_cache_dir, default_data_dir
from emostream.training.runs import new_model
from emostream.training.speaker_frames import first_frames, heard_frames
from emostream.training.train import fit_audio, fit_text

log = logging.getLogger(__name__)
CONDITIONS = ("clean", "choice", "test", "first", "telephone", "text")
# How the table names a condition where its key alone would not say it.
SHOWN = {"choice": "clean, choice speakers", "test": "clean, test speakers"}


@dataclass
class Fold:
    """One fold's trained model, the speaker prior its audio was normalised with, and its early-stopping figures
    (a fused recipe's dev is the mean of ``dev_parts``: its voice alone is the part comparable with a branch-wise
    recipe's audio dev)."""

    model: EmotionModel
    prior: SpeakerPrior | None
    dev: float
    epoch: int
    epochs_run: int
    dev_parts: dict[str, float]


def train_fold(cfg: TrainConfig, heard: Splits | None, read: Splits | None, cache_dir: Path,
               device: torch.device | str) -> Fold:
    """The config's recipe on one fold's corpora (merged "train" and "dev" splits): a fused config trains the whole
    model on ``heard`` clips paired with ``read`` utterances (training/fused.py), a branch-wise one only the branch
    of the modality given (training/train.py). The dev figure is what that recipe early-stops on."""
    model = new_model(cfg, cfg.dims())
    if cfg.fused:
        assert heard is not None and read is not None, "a fused recipe trains on audio and text corpora"
        fit = fit_pairs(cfg, model, heard, read, cache_dir, None, device)
        return Fold(model, fit.prior, fit.run["best_dev"], fit.run["best_epoch"], fit.run["epochs_run"],
                    fit.run["dev_parts"])
    if heard is not None:
        prior, run = fit_audio(cfg, model, heard, cache_dir, None, device)
        return Fold(model, prior, run.best_dev, run.best_epoch, run.epochs_run, {})
    assert read is not None
    sentences, tokens = text_features([u.text for s in read.values() for u in s], cfg.text_encoder, cache_dir)
    run = fit_text(cfg, model, read, sentences, tokens, None, device)
    return Fold(model, None, run.best_dev, run.best_epoch, run.epochs_run, {})


def leave_audio_out(cfg: TrainConfig, held: str, audio: dict[str, Splits], text: dict[str, Splits],
                    cache_dir: Path, device: torch.device | str, precision: Precision = "float32") -> dict[str, Any]:
    """The recipe on every audio corpus but ``held`` (a fused one with every text corpus); scores of ``held``
    whole, by voice alone: clean, as first words, and through a phone line, its features in ``precision`` (the
    recipe itself trains on float32)."""
    rest = {n: s for n, s in audio.items() if n != held}
    heard = {k: merged({}, rest, k) for k in ("train", "dev")}
    fold = train_fold(cfg, heard, {k: merged({}, text, k) for k in ("train", "dev")} if cfg.fused else None,
                      cache_dir, device)
    model, prior = fold.model, fold.prior
    utts = [u for split in audio[held].values() for u in split]
    y = label_array(utts, LABELS)
    test = np.array([name == "test" for name, split in audio[held].items() for _ in split])
    out: dict[str, Any] = {"trained_on": sorted(rest), "dev": fold.dev, "dev_parts": fold.dev_parts,
                           "epochs": fold.epoch, "epochs_run": fold.epochs_run}
    for channel in ("clean", "telephone"):
        raw = audio_frames([u.audio for u in utts if u.audio], cfg.features, cfg.vad, cache_dir, channel=channel,
                           precision=precision)
        inputs = dialogue_inputs(utts, {}, model.dims, audio=heard_frames(raw, utts, prior), use_text=False)
        log_probs = predict(model, inputs)
        out[channel] = corpus_scores(log_probs, y, LABELS, CORPORA[held].classes)
        if channel == "clean":
            for part, keep in (("choice", ~test), ("test", test)):
                out[part] = corpus_scores(log_probs[keep], y[keep], LABELS, CORPORA[held].classes)
            # every clip as its speaker's first words in a stream (the prior and itself alone)
            inputs = dialogue_inputs(utts, {}, model.dims, audio=first_frames(raw, utts, prior), use_text=False)
            out["first"] = corpus_scores(predict(model, inputs), y, LABELS, CORPORA[held].classes)
    return out


def leave_text_out(cfg: TrainConfig, held: str, audio: dict[str, Splits], text: dict[str, Splits],
                   cache_dir: Path, device: torch.device | str) -> dict[str, Any]:
    """The recipe on every text corpus but ``held`` (a fused one with every audio corpus); scores of ``held``'s
    test split, by words alone."""
    rest = {n: s for n, s in text.items() if n != held}
    read = {k: merged({}, rest, k) for k in ("train", "dev")}
    fold = train_fold(cfg, {k: merged({}, audio, k) for k in ("train", "dev")} if cfg.fused else None, read,
                      cache_dir, device)
    utts = text[held]["test"]
    sentences, tokens = text_features([u.text for u in utts], cfg.text_encoder, cache_dir)
    inputs = dialogue_inputs(utts, sentences, fold.model.dims, tokens=tokens)
    result = corpus_scores(predict(fold.model, inputs), label_array(utts, LABELS), LABELS, CORPORA[held].classes)
    return {"trained_on": sorted(rest), "dev": fold.dev, "dev_parts": fold.dev_parts, "epochs": fold.epoch,
            "epochs_run": fold.epochs_run, "text": result}


def table(results: dict[str, dict[str, Any]]) -> str:
    """One markdown row per left-out corpus and condition."""
    head = ("| left out | condition | trained on | dev (training corpora) | UA (its classes) | UA (all 7) "
            "| weighted F1 | anger recall | anger precision | arousal | ECE |")
    rows = [head, "|" + "---|" * 11]
    for held, r in results.items():
        for cond in CONDITIONS:
            if cond not in r:
                continue
            h = headline(r[cond])
            arousal = "-" if h["arousal"] is None else f"{h['arousal']:.3f}"
            rows.append(f"| {held} | {SHOWN.get(cond, cond)} | {', '.join(r['trained_on'])} | {r['dev']:.3f} | "
                        f"{h['ua']:.3f} | {h['ua_full']:.3f} | {h['weighted_f1']:.3f} | {h['anger_recall']:.3f} | "
                        f"{h['anger_precision']:.3f} | {arousal} | {h['ece']:.3f} |")
    return "\n".join(rows) + "\n"


def run(cfg: TrainConfig, data_dir: Path, cache_dir: Path, out: Path, modalities: tuple[str, ...], every: int = 1,
        device: torch.device | str = "cpu", precision: Precision = "float32") -> dict[str, dict[str, Any]]:
    t0 = time.time()
    results: dict[str, dict[str, Any]] = {}
    scored_in = functools.partial(leave_audio_out, precision=precision)
    plans = [(modality, names, leave_out) for modality, names, leave_out in (
        ("audio", cfg.audio_corpora, scored_in), ("text", cfg.text_corpora, leave_text_out))
        if modality in modalities and len(names) > 1]
    # A branch-wise recipe learns from the left-out modality's corpora alone, a fused one from both modalities'.
    loaded = {"audio", "text"} if cfg.fused else {modality for modality, _, _ in plans}
    audio = load_more(cfg.audio_corpora, data_dir, every, include_first=True) if "audio" in loaded else {}
    text = load_more(cfg.text_corpora, data_dir, every, include_first=True) if "text" in loaded else {}
    for _, names, leave_out in plans:
        for held in names:
            log.info("leaving out %s (training on %s)", held, ", ".join(n for n in names if n != held))
            results[held] = leave_out(cfg, held, audio, text, cache_dir, device)
            for cond in CONDITIONS:
                if cond in results[held] and cond not in SHOWN:  # a part of clean: its matrix is in clean's
                    out.mkdir(parents=True, exist_ok=True)
                    plot_confusion(results[held][cond], f"{cfg.bundle_id} recipe, {held} left out ({cond})",
                                   out / f"{held}_{cond}.png")
            log.info("%s left out: %s", held, {c: headline(results[held][c]) for c in CONDITIONS
                                               if c in results[held]})
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_corpus.json").write_text(json.dumps({"recipe": cfg.bundle_id, "seconds": round(time.time() - t0),
                                                       "subsample_every": every, "precision": precision,
                                                       "results": results}, indent=1))
    (out / "table.md").write_text(table(results))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.cross_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="training config whose recipe is scored")
    p.add_argument("--out", type=Path, default=Path("runs/cross_corpus"), help="report folder (JSON, table.md, "
                   "confusion PNGs)")
    p.add_argument("--modality", choices=("audio", "text", "both"), default="both")
    add_override_option(p)
    p.add_argument("--subsample", type=int, default=1, metavar="N", help="every N-th clip/utterance (smoke runs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="score the left-out audio corpus with the Whisper blocks in this arithmetic, as a stream "
                        "serves them (model.precision; the folds train on float32 either way)")
    add_data_options(p)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    modalities = ("audio", "text") if a.modality == "both" else (a.modality,)
    try:
        results = run(load_config(a.config, a.overrides), a.data or default_data_dir(),
                      a.cache or default_cache_dir(), a.out, modalities, a.subsample, precision=a.precision)
    except (FileNotFoundError, ValueError) as e:  # a ConfigError, a missing corpus
        print(f"cross_corpus: error: {e}", file=sys.stderr)
        return 1
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
