"""MELD loader: the official ``{train,dev,test}_sent_emo.csv`` files (text, speakers, dialogues)."""

from __future__ import annotations

import csv
from pathlib import Path

from emostream.models.labels import MELD_LABELS
from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

SPLITS = ("train", "dev", "test")

# The official release carries UTF-8 punctuation decoded as cp1252 (the three characters "\u00e2\u20ac\u2122"
# for a right single quote). Undo that for the characters MELD uses, then write typographic punctuation as ASCII,
# because the stream's ASR (Whisper) emits ASCII apostrophes and quotes: training text should look like what the
# model will be fed. (Escapes keep the source ASCII.)
ASCII_PUNCT: dict[str, str] = {
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": " - ",
    "\u2013": "-", "\xa0": " ",
}


def _as_cp1252(char: str) -> str:
    """How ``char`` reads when its UTF-8 bytes are decoded as cp1252 (bytes cp1252 lacks pass through)."""
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in char.encode("utf-8"))


MOJIBAKE: dict[str, str] = {_as_cp1252(c): c for c in [*ASCII_PUNCT, "\u00e9", "\u00f3", "\u00e8", "\u00e0"]}
REQUIRED_COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")


def clean_text(text: str) -> str:
    """Repairs mis-encoded characters and normalises punctuation and spaces (longest patterns first)."""
    for table in (MOJIBAKE, ASCII_PUNCT):
        for bad in sorted(table, key=len, reverse=True):
            text = text.replace(bad, table[bad])
    return " ".join(text.split())


def load_meld(data_dir: Path, split: str) -> list[Utterance]:
    """Utterances of one official split, ordered by dialogue and turn."""
    if split not in SPLITS:
        raise ValueError(f"MELD split {split!r} does not exist; use one of {', '.join(SPLITS)}")
    root = require_dir(data_dir / "meld", "MELD data (meld/ with the official *_sent_emo.csv files)")
    path = root / f"{split}_sent_emo.csv"
    if not path.is_file():
        raise FileNotFoundError(f"MELD {split} split not found: {path} is missing")
    out: list[Utterance] = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if missing := [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            emotion = row["Emotion"].strip().lower()
            if emotion not in MELD_LABELS:
                raise ValueError(f"{path}:{line}: unknown emotion {row['Emotion']!r}")
            try:
                dialogue, turn = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
            except ValueError:
                raise ValueError(f"{path}:{line}: Dialogue_ID/Utterance_ID must be integers") from None
            out.append(Utterance(audio=None, text=clean_text(row["Utterance"]), label=MELD_LABELS[emotion],
                                 speaker=row["Speaker"].strip(), dialogue=f"meld-{split}-{dialogue}", turn=turn,
                                 corpus="meld"))
    out.sort(key=lambda u: (int(u.dialogue.rsplit("-", 1)[1]), u.turn))
    return out
