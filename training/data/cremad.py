"""CREMA-D loader: ``AudioWAV/1001_DFA_ANG_XX.wav`` = actor, sentence, emotion, level; all from the name.

91 actors (1001-1091), 12 fixed sentences, six emotions (no surprise). The sentence is the transcript: like
RAVDESS's statements, the words carry no emotion.
"""

from __future__ import annotations

from pathlib import Path

from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

CREMAD_LABELS: dict[str, str] = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "joy", "NEU": "neutral",
                                 "SAD": "sadness"}
CREMAD_SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock.", "TIE": "That is exactly what happened.", "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.", "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.", "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.", "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.", "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
LEVELS = ("LO", "MD", "HI", "XX")


def parse_cremad_name(path: Path) -> Utterance:
    fields = path.stem.split("_")
    if len(fields) != 4 or not fields[0].isdigit():
        raise ValueError(f"{path}: not a CREMA-D name (expected ACTOR_SENTENCE_EMOTION_LEVEL, e.g. 1001_DFA_ANG_XX)")
    actor, sentence, emotion, level = fields
    if sentence not in CREMAD_SENTENCES:
        raise ValueError(f"{path}: unknown CREMA-D sentence code {sentence}")
    if emotion not in CREMAD_LABELS:
        raise ValueError(f"{path}: unknown CREMA-D emotion code {emotion}")
    if level not in LEVELS:
        raise ValueError(f"{path}: unknown CREMA-D level {level}")
    return Utterance(audio=path, text=CREMAD_SENTENCES[sentence], label=CREMAD_LABELS[emotion],
                     speaker=f"cremad{actor}", dialogue=f"cremad-{path.stem}", turn=0, corpus="cremad")


def load_cremad(root: Path) -> list[Utterance]:
    folder = require_dir(root / "AudioWAV", "CREMA-D data (AudioWAV/*.wav)")
    files = sorted(folder.glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"no CREMA-D clips in {folder}")
    return [parse_cremad_name(f) for f in files]
