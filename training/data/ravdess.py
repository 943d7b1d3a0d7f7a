"""RAVDESS loader: speech clips named ``MM-VV-EE-II-SS-RR-AA.flac``; every field comes from the name."""

from __future__ import annotations

from pathlib import Path

from emostream.models.labels import RAVDESS_CODES
from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

# Statement code (fifth field) → what the actor says; it is the utterance's transcript.
STATEMENTS: dict[str, str] = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


def parse_name(path: Path) -> Utterance:
    """One clip's record from its file name; a name that does not follow the scheme is an error."""
    fields = path.stem.split("-")
    if len(fields) != 7 or not all(len(f) == 2 and f.isdigit() for f in fields):
        raise ValueError(f"{path}: not a RAVDESS name (expected MM-VV-EE-II-SS-RR-AA, seven two-digit fields)")
    modality, channel, emotion, _intensity, statement, _rep, actor = fields
    if modality != "03" or channel != "01":
        raise ValueError(f"{path}: not an audio-only speech clip (modality {modality}, vocal channel {channel})")
    if emotion not in RAVDESS_CODES:
        raise ValueError(f"{path}: unknown emotion code {emotion}")
    if statement not in STATEMENTS:
        raise ValueError(f"{path}: unknown statement code {statement}")
    return Utterance(audio=path, text=STATEMENTS[statement], label=RAVDESS_CODES[emotion], speaker=f"actor{actor}",
                     dialogue=f"ravdess-{path.stem}", turn=0, corpus="ravdess")


def actor_of(u: Utterance) -> int:
    return int(u.speaker.removeprefix("actor"))


def load_ravdess(data_dir: Path, actors: list[int] | None = None) -> list[Utterance]:
    """All clips (of ``actors`` if given), sorted by file name."""
    root = require_dir(data_dir / "ravdess", "RAVDESS data (ravdess/Actor_XX/*.flac)")
    files = sorted(root.glob("Actor_*/*.flac"))
    if not files:
        raise FileNotFoundError(f"no RAVDESS clips under {root} (expected Actor_XX/MM-VV-EE-II-SS-RR-AA.flac)")
    clips = [parse_name(f) for f in files]
    return clips if actors is None else [u for u in clips if actor_of(u) in set(actors)]
