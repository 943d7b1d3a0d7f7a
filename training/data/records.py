"""The one manifest record every corpus loader produces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emostream.models.labels import LABELS


@dataclass(frozen=True)
class Utterance:
    """One labelled utterance. ``turn`` orders utterances within ``dialogue``; context is built from it."""

    audio: Path | None  # 16 kHz mono audio file, or None for text-only corpora
    text: str  # transcript, "" when unknown
    label: str  # unified label (models.labels.LABELS)
    speaker: str
    dialogue: str
    turn: int
    corpus: str
    language: str = "en"  # ISO 639-1 code of what is said

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"{self.corpus} utterance {self.dialogue}/{self.turn}: label {self.label!r} "
                             f"is not one of {', '.join(LABELS)}")
