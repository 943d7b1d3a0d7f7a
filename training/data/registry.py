"""Every corpus behind one registry: name → loader → splits of records, so that training and evaluation are generic
over corpora. A new corpus is a loader in ``training/data/`` and one entry here.

Audio corpora of acted speech have no official split; each is split here by whole speakers (train / dev for early
stopping and model choice / test), with as many women as men in dev and test where the corpus allows. Text corpora
keep their official splits (MELD, GoEmotions) or the fixed one of their loader (DailyDialog).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emostream.training.data.dailydialog import load_dailydialog
from emostream.training.data.emodb import load_emodb
from emostream.training.data.goemotions import load_goemotions
from emostream.training.data.meld import load_meld
from emostream.training.data.nemo import load_nemo
from emostream.training.data.ravdess import load_ravdess
from emostream.training.data.records import Utterance

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Corpus:
    name: str
    modality: Literal["audio", "text"]
    language: str
    classes: tuple[str, ...]  # the unified classes it has (a left-out corpus is scored over these)
    licence: str
    source: str
    metric: str  # its dev / headline metric, a key of training.metrics.scores
    load: Callable[[Path], list[Utterance]] | None = None  # audio: every record; split by ``held_out``
    load_split: Callable[[Path, str], list[Utterance]] | None = None  # text: one split
    held_out: dict[str, tuple[str, ...]] = field(default_factory=dict)  # audio: split → speakers

    def splits(self, data_dir: Path) -> dict[str, list[Utterance]]:
        """train / dev / test records; no speaker of an audio corpus is in two splits."""
        if self.load_split is not None:
            return {s: self.load_split(data_dir, s) for s in SPLITS}
        assert self.load is not None
        utts = self.load(data_dir)
        dev, test = set(self.held_out["dev"]), set(self.held_out["test"])
        if unknown := (dev | test) - {u.speaker for u in utts}:
            raise ValueError(f"{self.name}: held-out speakers {sorted(unknown)} are not in the corpus")
        return {"train": [u for u in utts if u.speaker not in dev | test],
                "dev": [u for u in utts if u.speaker in dev], "test": [u for u in utts if u.speaker in test]}

    def everything(self, data_dir: Path) -> list[Utterance]:
        """The whole corpus (how a left-out corpus is scored)."""
        return [u for s in self.splits(data_dir).values() for u in s]


SEVEN = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus("ravdess", "audio", "en", SEVEN, "CC BY-NC-SA 4.0 (non-commercial)",
           "Livingstone & Russo (2018), PLoS ONE 13(5): e0196391", "unweighted_recall", load=load_ravdess,
           held_out={"dev": ("actor17", "actor18", "actor19", "actor20"),
                     "test": ("actor21", "actor22", "actor23", "actor24")}),
    Corpus("emodb", "audio", "de", ("neutral", "joy", "anger", "sadness", "disgust", "fear"),
           "free for research from its authors; check its terms before commercial use",
           "Burkhardt et al. (2005), Interspeech", "unweighted_recall", load=lambda d: load_emodb(d / "emodb"),
           held_out={"dev": ("emodb12", "emodb14"), "test": ("emodb15", "emodb16")}),
    Corpus("nemo", "audio", "pl", ("neutral", "joy", "surprise", "anger", "sadness", "fear"),
           "CC BY-NC-SA 4.0 (non-commercial)", "Christop (2024), LREC-COLING", "unweighted_recall", load=load_nemo,
           held_out={"dev": ("nemo-KD0", "nemo-TP0"), "test": ("nemo-IC0", "nemo-SM0")}),
    Corpus("meld", "text", "en", SEVEN, "GPL-3.0", "Poria et al. (2019), ACL", "weighted_f1", load_split=load_meld),
    Corpus("goemotions", "text", "en", SEVEN, "CC BY 4.0", "Demszky et al. (2020), ACL", "macro_f1",
           load_split=load_goemotions),
    Corpus("dailydialog", "text", "en", SEVEN, "CC BY-NC-SA 4.0 (non-commercial)", "Li et al. (2017), IJCNLP",
           "macro_f1", load_split=load_dailydialog),
)}


def corpus(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None
