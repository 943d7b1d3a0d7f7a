"""Berlin EmoDB loader: ``wav/03a01Fa.flac`` (or ``.wav``) = speaker 03, text a01, emotion letter F, version a.

Emotion letters are German initials: W Ärger (anger), L Langeweile (boredom), E Ekel (disgust), A Angst (fear),
F Freude (joy), T Trauer (sadness), N neutral. Boredom has no unified class and is left out. The ten texts are
German and the packaged text encoder is English, so the transcript is left empty (audio-only corpus).
The release here is lossless FLAC in ``wav/`` (converted from the original WAV); both suffixes are read.
"""

from __future__ import annotations

import re
from pathlib import Path

from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

EMODB_LABELS: dict[str, str | None] = {"W": "anger", "L": None, "E": "disgust", "A": "fear", "F": "joy",
                                       "T": "sadness", "N": "neutral"}
_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[ab]\d{2})(?P<emotion>[A-Z])(?P<version>[a-z])$")


def parse_emodb_name(path: Path) -> Utterance | None:
    """The clip's record, or None for boredom (no unified class)."""
    m = _NAME.match(path.stem)
    if not m:
        raise ValueError(f"{path}: not an EmoDB name (expected e.g. 03a01Fa: speaker, text, emotion, version)")
    if m["emotion"] not in EMODB_LABELS:
        raise ValueError(f"{path}: unknown EmoDB emotion letter {m['emotion']}")
    label = EMODB_LABELS[m["emotion"]]
    if label is None:
        return None
    return Utterance(audio=path, text="", label=label, speaker=f"emodb{m['speaker']}",
                     dialogue=f"emodb-{path.stem}", turn=0, corpus="emodb", language="de")


def load_emodb(root: Path) -> list[Utterance]:
    folder = require_dir(root / "wav", "EmoDB data (wav/*.flac or wav/*.wav)")
    files = sorted(f for f in folder.iterdir() if f.suffix in (".flac", ".wav"))
    if not files:
        raise FileNotFoundError(f"no EmoDB clips in {folder}")
    return [u for f in files if (u := parse_emodb_name(f)) is not None]
