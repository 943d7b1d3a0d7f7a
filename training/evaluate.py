"""Scores a bundle on a corpus split, exactly as exported, and writes the reports.

MELD: the text branch with past-only dialogue context, audio absent (MELD audio is not available here).
RAVDESS: audio alone, text alone (the fixed statement, no context) and both fused, on the actors the
bundle's data card names for the split, with the clips cut by the VAD the bundle was trained with; and
audio alone at a level 12 dB below the corpus's, because a live microphone is rarely as loud as a studio's.
A bundle with speaker normalisation gets each actor's clips normalised as a stream would (``heard_frames``).
Pairs: each RAVDESS clip of the split's actors paired with three MELD utterances of the same label from the
MELD split of the same name (with their past-only context; seed ``PAIR_SEED``): fused, audio alone, text alone.
Any other corpus of the registry (training/data/registry.py): its split as the registry fixes it, text corpora with
past-only context, audio corpora by voice alone, clean and through a simulated phone line, scored with the argmax
restricted to the corpus's classes (training/corpus_scores.py). RAVDESS gets the phone-line condition too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from emostream.models.bundle import Bundle
from emostream.models.collate import UtteranceInput
from emostream.models.whisper_states import Precision
from emostream.stream.stages.vad import VadConfig
from emostream.training.batching import dialogue_inputs, label_array, predict
from emostream.training.cache import audio_frames, text_features
from emostream.training.corpus_scores import corpus_scores
from emostream.training.data.manifest import load_manifest
from emostream.training.data.meld import load_meld
from emostream.training.data.ravdess import load_ravdess
from emostream.training.data.records import Utterance
from emostream.training.data.registry import CORPORA as REGISTRY
from emostream.training.manifest_inputs import manifest_inputs
from emostream.training.metrics import scores, write_report
from emostream.training.pairs import PAIR_SEED, match_labels, paired_inputs
from emostream.training.speaker_frames import first_frames, heard_frames
from emostream.training.splits import subsample

log = logging.getLogger(__name__)
CORPORA = ("meld", "ravdess", "pairs", "manifest", *(c for c in REGISTRY if c not in ("meld", "ravdess")))
QUIET_DB = -12.0


def evaluate(bundle: Bundle, corpus: str, split: str, data_dir: Path, cache_dir: Path, reports: Path,
             every: int = 1, manifest: Path | None = None,
             precision: Precision = "float32") -> dict[str, dict[str, Any]]:
    """Results by condition name (e.g. ``ravdess_test_audio``); each also written under ``reports``.
    ``precision``: of Whisper's inner blocks, as a stream serves them (``model.precision``).

    ``corpus="manifest"`` scores the rows of ``manifest`` (``split`` names the conditions): as given (fused where
    a row has both), and audio alone / text alone over the rows that have that modality.
    """
    meta, model = bundle.meta, bundle.model
    labels = meta.labels
    if corpus == "manifest":
        if manifest is None:
            raise ValueError("--corpus manifest needs --manifest FILE (a CSV or JSONL manifest)")
        return _evaluate_manifest(bundle, manifest, split, cache_dir, reports, precision)
    if corpus in REGISTRY and corpus not in ("meld", "ravdess"):
        return _evaluate_registered(bundle, corpus, split, data_dir, cache_dir, reports, every, precision)
    utts, conditions = conditions_of(bundle, corpus, split, data_dir, cache_dir, every, precision)
    y = label_array(utts, labels)
    results = {name: scores(y, predict(model, inputs).argmax(1), labels) for name, inputs in conditions.items()}
    if corpus == "ravdess":  # each clip as a new speaker's first words; then 12 dB quieter; then by phone
        vad = VadConfig(**meta.data_card["vad"])
        first = first_frames(audio_frames([u.audio for u in utts if u.audio], meta.features, vad, cache_dir,
                                          precision=precision), utts,
                             meta.speaker_norm)
        inputs = dialogue_inputs(utts, {}, meta.dims, audio=first, use_text=False)
        results[f"ravdess_{split}_audio_first"] = scores(y, predict(model, inputs).argmax(1), labels)
        quiet = heard_frames(audio_frames([u.audio for u in utts if u.audio], meta.features, vad, cache_dir,
                                          gain_db=QUIET_DB, precision=precision), utts, meta.speaker_norm)
        inputs = dialogue_inputs(utts, {}, meta.dims, audio=quiet, use_text=False)
        results[f"ravdess_{split}_audio_quiet"] = scores(y, predict(model, inputs).argmax(1), labels)
        phone = heard_frames(audio_frames([u.audio for u in utts if u.audio], meta.features, vad, cache_dir,
                                          channel="telephone", precision=precision), utts, meta.speaker_norm)
        inputs = dialogue_inputs(utts, {}, meta.dims, audio=phone, use_text=False)
        results[f"ravdess_{split}_audio_telephone"] = scores(y, predict(model, inputs).argmax(1), labels)
    return _report(results, meta.id, reports)


def conditions_of(bundle: Bundle, corpus: str, split: str, data_dir: Path, cache_dir: Path,
                  every: int = 1, precision: Precision = "float32",
                  ) -> tuple[list[Utterance], dict[str, list[UtteranceInput]]]:
    """The inputs of each condition ``evaluate`` scores on ``corpus`` (meld, ravdess or pairs), by condition name,
    and the utterances whose labels they are scored against (in the same order)."""
    meta = bundle.meta
    labels, spec = meta.labels, meta.text_encoder
    if corpus == "meld":
        utts = subsample(load_meld(data_dir, split), every)
        sentences, tokens = text_features([u.text for u in utts], spec, cache_dir)
        conditions = {f"meld_{split}_text": dialogue_inputs(utts, sentences, meta.dims, tokens=tokens)}
    elif corpus in ("ravdess", "pairs"):
        card = meta.data_card.get("ravdess", {})
        if split not in card.get("actors", {}) or "vad" not in meta.data_card:
            raise ValueError(f"bundle {bundle.path} does not record RAVDESS {split} actors and VAD settings in its "
                             "data card; evaluate it with a bundle written by emo-train")
        actors = card["actors"][split]
        utts = subsample(load_ravdess(data_dir, actors), every)
        vad = VadConfig(**meta.data_card["vad"])
        frames = heard_frames(audio_frames([u.audio for u in utts if u.audio], meta.features, vad, cache_dir,
                                          precision=precision), utts,
                              meta.speaker_norm)
        sentences, tokens = text_features([u.text for u in utts], spec, cache_dir)
        if corpus == "pairs":
            meld = subsample(load_meld(data_dir, split), every)
            meld_sentences, meld_tokens = text_features([u.text for u in meld], spec, cache_dir)
            meld_in = dialogue_inputs(meld, meld_sentences, meta.dims, tokens=meld_tokens)
            a, t = match_labels(label_array(utts, labels), label_array(meld, labels),
                                np.random.default_rng(PAIR_SEED), per_clip=3)
            fused = paired_inputs(frames, meld_in, a, t)
            utts = [utts[i] for i in a]
            conditions = {f"pairs_{split}_fused": fused,
                          f"pairs_{split}_audio": [replace(x, sentence=None, tokens=None, context=()) for x in fused],
                          f"pairs_{split}_text": [replace(x, audio=None) for x in fused]}
        else:
            conditions = {
                f"ravdess_{split}_audio": dialogue_inputs(utts, sentences, meta.dims, audio=frames, use_text=False),
                f"ravdess_{split}_text": dialogue_inputs(utts, sentences, meta.dims, tokens=tokens),
                f"ravdess_{split}_fused": dialogue_inputs(utts, sentences, meta.dims, audio=frames, tokens=tokens),
            }
    else:
        raise ValueError(f"unknown corpus {corpus!r}; use one of {', '.join(CORPORA)}")
    return utts, conditions


def _report(results: dict[str, dict[str, Any]], model_id: str, reports: Path) -> dict[str, dict[str, Any]]:
    for name, result in results.items():
        write_report(result, f"{model_id}: {name.replace('_', ' ')}", reports, name)
        log.info("%s: WA %.3f UA %.3f wF1 %.3f", name, result["accuracy"], result["unweighted_recall"],
                 result["weighted_f1"])
    return results


def _evaluate_registered(bundle: Bundle, corpus: str, split: str, data_dir: Path, cache_dir: Path, reports: Path,
                         every: int, precision: Precision) -> dict[str, dict[str, Any]]:
    meta, model, c = bundle.meta, bundle.model, REGISTRY[corpus]
    utts = subsample(c.splits(data_dir)[split], every)
    y = label_array(utts, meta.labels)
    if c.modality == "text":
        sentences, tokens = text_features([u.text for u in utts], meta.text_encoder, cache_dir)
        inputs = dialogue_inputs(utts, sentences, meta.dims, tokens=tokens)
        return _report({f"{corpus}_{split}_text": scores(y, predict(model, inputs).argmax(1), meta.labels)},
                       meta.id, reports)
    vad = VadConfig(**meta.data_card["vad"]) if "vad" in meta.data_card else VadConfig()
    results = {}
    for channel, suffix in (("clean", ""), ("telephone", "_telephone")):
        frames = heard_frames(audio_frames([u.audio for u in utts if u.audio], meta.features, vad, cache_dir,
                                           channel=channel, precision=precision), utts, meta.speaker_norm)
        inputs = dialogue_inputs(utts, {}, meta.dims, audio=frames, use_text=False)
        results[f"{corpus}_{split}_audio{suffix}"] = corpus_scores(predict(model, inputs), y, meta.labels, c.classes)
    return _report(results, meta.id, reports)


def _evaluate_manifest(bundle: Bundle, manifest: Path, split: str, cache_dir: Path,
                       reports: Path, precision: Precision) -> dict[str, dict[str, Any]]:
    meta, model = bundle.meta, bundle.model
    utts = load_manifest(manifest, corpus="manifest")
    vad = VadConfig(**meta.data_card["vad"]) if "vad" in meta.data_card else VadConfig()
    inputs = manifest_inputs(utts, None, cache_dir, meta.text_encoder, meta.features, vad, meta.dims,  # type: ignore[arg-type]
                             speaker_norm=(meta.speaker_norm, False) if meta.speaker_norm else None,
                             precision=precision)
    y = label_array(utts, meta.labels)
    results: dict[str, dict[str, Any]] = {}
    name = f"manifest_{split}"
    results[f"{name}_as_given"] = scores(y, predict(model, inputs).argmax(1), meta.labels)
    audio = [i for i, x in enumerate(inputs) if x.audio is not None]
    text = [i for i, x in enumerate(inputs) if x.sentence is not None]
    if audio:
        only = [replace(inputs[i], sentence=None, tokens=None, context=()) for i in audio]
        results[f"{name}_audio"] = scores(y[audio], predict(model, only).argmax(1), meta.labels)
    if text:
        only = [replace(inputs[i], audio=None) for i in text]
        results[f"{name}_text"] = scores(y[text], predict(model, only).argmax(1), meta.labels)
    return _report(results, meta.id, reports)
