"""Your own data: a CSV or JSON Lines manifest with columns ``audio, text, label, speaker, dialogue, turn``.

- ``audio``: path of a WAV/FLAC/OGG file, relative to the manifest's folder or absolute; empty for text only.
  Any sample rate and channel count (down-mixed and resampled to 16 kHz when features are computed).
- ``text``: the transcript; empty when unknown (audio only).
- ``label``: one of the unified labels (neutral, joy, surprise, anger, sadness, disgust, fear) or a common
  alias (``LABEL_ALIASES``: happy, angry, sad, fearful, surprised, disgusted, calm, ...).
- ``speaker``: used for speaker-independent splits and for same/other-speaker context.
- ``dialogue``, ``turn``: utterances of one dialogue in turn order give each other past-only context; leave
  ``dialogue`` empty for isolated utterances.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from emostream.models.labels import LABELS
from emostream.training.data.records import Utterance

COLUMNS = ("audio", "text", "label", "speaker", "dialogue", "turn")
LABEL_ALIASES: dict[str, str] = {
    **{label: label for label in LABELS},
    "neu": "neutral", "calm": "neutral", "happy": "joy", "happiness": "joy", "hap": "joy", "excited": "joy",
    "surprised": "surprise", "sur": "surprise", "angry": "anger", "ang": "anger", "sad": "sadness",
    "disgusted": "disgust", "dis": "disgust", "fearful": "fear", "fea": "fear", "afraid": "fear",
}


def _rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{n}: expected a JSON object per line")
                rows.append((n, row))
        return rows
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: a manifest must be .csv or .jsonl")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if missing := [c for c in ("label",) if c not in (reader.fieldnames or [])]:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(enumerate(reader, start=2))


def load_manifest(path: Path, corpus: str | None = None) -> list[Utterance]:
    """Records in dialogue and turn order (file order within equal turns). Each row needs a label and audio or
    text; unknown columns are errors, so that a misspelt header does not silently drop a field."""
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found")
    corpus = corpus or path.stem
    out: list[tuple[str, int, int, Utterance]] = []
    for n, row in _rows(path):
        where = f"{path}:{n}"
        if None in row:
            raise ValueError(f"{where}: more fields than the header has (quote a text that contains commas)")
        if unknown := sorted(set(row) - set(COLUMNS)):
            raise ValueError(f"{where}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
        raw = str(row.get("label") or "").strip().lower()
        if raw not in LABEL_ALIASES:
            raise ValueError(f"{where}: label {row.get('label')!r} is not one of {', '.join(LABELS)} "
                             "(or an alias in LABEL_ALIASES)")
        audio_field = str(row.get("audio") or "").strip()
        audio = None
        if audio_field:
            audio = Path(audio_field) if Path(audio_field).is_absolute() else path.parent / audio_field
            if not audio.is_file():
                raise FileNotFoundError(f"{where}: audio file {audio} not found")
        text = " ".join(str(row.get("text") or "").split())
        if audio is None and not text:
            raise ValueError(f"{where}: a row needs audio or text (or both)")
        try:
            turn = int(row.get("turn") or 0)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: turn must be an integer, not {row.get('turn')!r}") from None
        dialogue = str(row.get("dialogue") or "").strip() or f"row{n}"
        speaker = str(row.get("speaker") or "").strip() or "unknown"
        utt = Utterance(audio=audio, text=text, label=LABEL_ALIASES[raw], speaker=speaker,
                        dialogue=f"{corpus}-{dialogue}", turn=turn, corpus=corpus)
        out.append((utt.dialogue, turn, n, utt))
    if not out:
        raise ValueError(f"{path}: no rows")
    return [u for *_, u in sorted(out, key=lambda r: r[:3])]
