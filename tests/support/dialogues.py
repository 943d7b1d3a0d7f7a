"""Builders of test dialogues from real audio (RAVDESS clips, espeak-ng speech) with exact ground truth.

Every clip is trimmed with one documented energy criterion (:func:`trim_silence`), then clips are laid out
with known pauses, so each turn's start and end in the written file are known to the sample.

Data location: ``$EMO_STREAM_DATA`` if set, else ``<repo>/../shared/data``. RAVDESS lives in ``<data>/ravdess``.
Helpers that need it call ``pytest.skip`` with a reason when it is absent; helpers that need the ``espeak-ng`` or
``sox`` binaries skip likewise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests import REPO_ROOT

DATA_ENV = "EMO_STREAM_DATA"

#: Unified label set used everywhere in emo-stream (MELD's seven emotions).
EMOTIONS: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")

#: RAVDESS emotion code (EE field) -> unified label. Calm is folded into neutral.
RAVDESS_EMOTIONS: dict[int, str] = {
    1: "neutral",
    2: "neutral",
    3: "joy",
    4: "sadness",
    5: "anger",
    6: "fear",
    7: "disgust",
    8: "surprise",
}

#: RAVDESS statement code (SS field) -> transcript.
RAVDESS_STATEMENTS: dict[int, str] = {
    1: "Kids are talking by the door",
    2: "Dogs are sitting by the door",
}

#: Actors the training code keeps out of training; test dialogues use only 23 (male) and 24 (female).
HELD_OUT_ACTORS: tuple[int, ...] = (21, 22, 23, 24)

MIN_PAUSE_S = 0.8  # the VAD's hangover is about 0.3 s; shorter pauses may merge two turns into one utterance
TRIM_FRAME_MS = 10
TRIM_THRESHOLD_DB = -35.0
TRIM_FLOOR_DBFS = -55.0


@dataclass(frozen=True)
class Turn:
    """One utterance in a built dialogue; times are seconds from the start of the file."""

    start_s: float
    end_s: float
    speaker: str
    channel: int
    text: str
    emotion: str
    source: str = ""  # e.g. "ravdess:03-01-05-02-01-01-23" or "espeak-ng:en-us"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Dialogue:
    """A dialogue audio file and its exact ground truth."""

    path: Path
    sample_rate: int
    channels: int
    turns: list[Turn]
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        """JSON-serialisable ground truth (the path is given as a string)."""
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass(frozen=True)
class Clip:
    """A trimmed mono utterance (float32 in [-1, 1]) with its transcript and emotion label."""

    samples: np.ndarray = field(repr=False)
    sample_rate: int
    text: str
    emotion: str
    source: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


# --------------------------------------------------------------------------------------------------- locating data


def data_root() -> Path:
    """Shared data folder: ``$EMO_STREAM_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def ravdess_root() -> Path:
    """RAVDESS folder, or ``pytest.skip`` when it is absent."""
    root = data_root() / "ravdess"
    if not (root / "Actor_24").is_dir():
        pytest.skip(f"RAVDESS not found at {root} (set ${DATA_ENV} to the folder holding ravdess/)")
    return root


def require_binary(name: str) -> str:
    """Absolute path of a CLI tool, or ``pytest.skip`` when it is not installed."""
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/local/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )
    if not found:
        pytest.skip(f"`{name}` is not installed (apt-get install espeak-ng sox mosquitto mosquitto-clients)")
    return found


# --------------------------------------------------------------------------------------------------- clips


def trim_silence(
    samples: np.ndarray,
    sample_rate: int,
    frame_ms: float = TRIM_FRAME_MS,
    threshold_db: float = TRIM_THRESHOLD_DB,
) -> np.ndarray:
    """Cut leading and trailing silence.

    The signal is cut into non-overlapping ``frame_ms`` frames; a frame is *voiced* when its RMS is at least
    ``threshold_db`` relative to the loudest frame's RMS and above an absolute floor of ``TRIM_FLOOR_DBFS`` (so that
    near-silence before a quiet, calm clip does not count as speech). The result runs from the first sample of the
    first voiced frame to the last sample of the last voiced frame (interior pauses are kept).
    """
    x = np.asarray(samples, dtype=np.float32)
    hop = max(1, round(sample_rate * frame_ms / 1000))
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return x[:0]
    voiced = np.flatnonzero(rms >= max(peak * 10.0 ** (threshold_db / 20.0), 10.0 ** (TRIM_FLOOR_DBFS / 20.0)))
    if not len(voiced):
        return x[:0]
    return x[voiced[0] * hop : (voiced[-1] + 1) * hop].copy()


def _resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono float audio with the ``sox`` CLI (its default high-quality rate converter)."""
    if sr_in == sr_out:
        return samples
    sox = require_binary("sox")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(src, samples, sr_in, subtype="FLOAT")
        subprocess.run([sox, "-V1", "-D", str(src), "-r", str(sr_out), "-e", "floating-point", str(dst)], check=True)
        out, _ = sf.read(dst, dtype="float32")
    return out


def ravdess_clip(
    actor: int,
    emotion_code: int,
    statement: int,
    intensity: int = 1,
    repetition: int = 1,
    *,
    sample_rate: int = 16000,
    threshold_db: float = TRIM_THRESHOLD_DB,
) -> Clip:
    """Load ``Actor_XX/03-01-EE-II-SS-RR-AA.flac``, trim it, and label it (unified emotion, statement text)."""
    if emotion_code not in RAVDESS_EMOTIONS:
        raise ValueError(f"RAVDESS emotion code must be 1..8, got {emotion_code}")
    if emotion_code == 1 and intensity != 1:
        raise ValueError("RAVDESS neutral (01) has no strong intensity")
    stem = f"03-01-{emotion_code:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}"
    path = ravdess_root() / f"Actor_{actor:02d}" / f"{stem}.flac"
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    x = _resample(x.mean(axis=1), sr, sample_rate)
    return Clip(
        samples=trim_silence(x, sample_rate, threshold_db=threshold_db),
        sample_rate=sample_rate,
        text=RAVDESS_STATEMENTS[statement],
        emotion=RAVDESS_EMOTIONS[emotion_code],
        source=f"ravdess:{stem}",
    )


def espeak_clip(
    text: str,
    voice: str = "en-us",
    emotion: str = "neutral",
    *,
    speed_wpm: int = 160,
    sample_rate: int = 16000,
    threshold_db: float = TRIM_THRESHOLD_DB,
) -> Clip:
    """Synthesise ``text`` with ``espeak-ng -v VOICE -s SPEED -w out.wav``, resample with sox, trim.

    espeak-ng speaks flatly: ``emotion`` is the emotion intended by the words, not heard in the voice.
    """
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}")
    espeak = require_binary("espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        subprocess.run([espeak, "-v", voice, "-s", str(speed_wpm), "-w", str(wav), text], check=True)
        x, sr = sf.read(wav, dtype="float32", always_2d=True)
    x = _resample(x.mean(axis=1), sr, sample_rate)
    return Clip(
        samples=trim_silence(x, sample_rate, threshold_db=threshold_db),
        sample_rate=sample_rate,
        text=text,
        emotion=emotion,
        source=f"espeak-ng:{voice}",
    )


# --------------------------------------------------------------------------------------------------- dialogues


def build_dialogue(
    path: str | Path,
    turns_spec: Sequence[tuple[str, Clip]],
    pause_s: float | Sequence[float] = 1.0,
    stereo: bool = False,
    sample_rate: int = 16000,
    lead_s: float = 0.5,
    tail_s: float = 0.5,
) -> Dialogue:
    """Lay ``(speaker, clip)`` turns end to end and write the file (FLAC or WAV by suffix, 16-bit PCM).

    ``pause_s`` is one pause for every gap or one per gap (``len(turns_spec) - 1``), each >= 0.8 s.
    Mono: all speakers share channel 0. Stereo: the first speaker to appear is on the left channel (0), the second on
    the right (1), silence on the other; more than two speakers is an error. Turn times are sample-exact.
    """
    path = Path(path)
    if path.suffix.lower() not in (".flac", ".wav"):
        raise ValueError(f"write .flac or .wav, not {path.suffix!r}")
    if not turns_spec:
        raise ValueError("a dialogue needs at least one turn")
    gaps = [float(pause_s)] * (len(turns_spec) - 1) if np.isscalar(pause_s) else [float(p) for p in pause_s]
    if len(gaps) != len(turns_spec) - 1:
        raise ValueError(f"need {len(turns_spec) - 1} pauses, got {len(gaps)}")
    if any(g < MIN_PAUSE_S for g in gaps):
        raise ValueError(f"pauses must be >= {MIN_PAUSE_S} s so the VAD can separate turns, got {gaps}")

    speakers: list[str] = []
    for speaker, _ in turns_spec:
        if speaker not in speakers:
            speakers.append(speaker)
    channels = 2 if stereo else 1
    if stereo and len(speakers) > 2:
        raise ValueError(f"stereo holds two speakers, got {speakers}")

    clips = [_resample(c.samples, c.sample_rate, sample_rate) for _, c in turns_spec]
    spans: list[tuple[int, int]] = []
    cursor = round(lead_s * sample_rate)
    for i, clip in enumerate(clips):
        spans.append((cursor, cursor + len(clip)))
        cursor += len(clip) + (round(gaps[i] * sample_rate) if i < len(gaps) else 0)
    total = cursor + round(tail_s * sample_rate)

    audio = np.zeros((total, channels), dtype=np.float32)
    turns: list[Turn] = []
    for (speaker, clip), samples, (a, b) in zip(turns_spec, clips, spans, strict=True):
        ch = speakers.index(speaker) if stereo else 0
        audio[a:b, ch] = samples
        turns.append(Turn(a / sample_rate, b / sample_rate, speaker, ch, clip.text, clip.emotion, clip.source))

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return Dialogue(path=path, sample_rate=sample_rate, channels=channels, turns=turns, duration_s=total / sample_rate)


def ravdess_dialogue(tmp_dir: str | Path, *, stereo: bool = False, suffix: str = ".flac") -> Dialogue:
    """Eight alternating turns by held-out RAVDESS actors 23 (speaker A, male) and 24 (B, female).

    All seven unified emotions appear (neutral twice: once as RAVDESS calm); both statements; mixed intensities.
    """
    spec = [
        ("A", ravdess_clip(23, 1, 1)),  # neutral
        ("B", ravdess_clip(24, 3, 2, intensity=2)),  # joy
        ("A", ravdess_clip(23, 5, 1, intensity=2)),  # anger
        ("B", ravdess_clip(24, 4, 2, intensity=2)),  # sadness
        ("A", ravdess_clip(23, 8, 2, intensity=2)),  # surprise
        ("B", ravdess_clip(24, 6, 1, intensity=2)),  # fear
        ("A", ravdess_clip(23, 7, 1, intensity=2)),  # disgust
        ("B", ravdess_clip(24, 2, 2)),  # calm -> neutral
    ]
    pauses = [1.0, 1.2, 0.9, 1.5, 1.0, 1.1, 0.8]
    name = "ravdess_dialogue_stereo" if stereo else "ravdess_dialogue"
    return build_dialogue(Path(tmp_dir) / f"{name}{suffix}", spec, pause_s=pauses, stereo=stereo)


def mixed_dialogue(tmp_dir: str | Path, *, stereo: bool = False, suffix: str = ".flac") -> Dialogue:
    """Eight alternating turns: speaker A is espeak-ng ``en-us`` with varied transcripts, B is RAVDESS actor 24.

    A's emotions are intended in the words only (espeak-ng speaks flatly); B's are acted.
    """
    spec = [
        ("A", espeak_clip("I can't believe you did that, this is terrible", "en-us", "anger")),
        ("B", ravdess_clip(24, 4, 1, intensity=2)),  # sadness
        ("A", espeak_clip("Thank you so much, that is wonderful news", "en-us", "joy")),
        ("B", ravdess_clip(24, 8, 2, intensity=2)),  # surprise
        ("A", espeak_clip("Please send the invoice to the billing department by Friday", "en-us", "neutral")),
        ("B", ravdess_clip(24, 5, 2, intensity=2)),  # anger
        ("A", espeak_clip("I am really scared that something bad happened to her", "en-us", "fear")),
        ("B", ravdess_clip(24, 3, 1, intensity=2)),  # joy
    ]
    pauses = [1.0, 1.3, 0.9, 1.2, 1.0, 1.4, 1.1]
    name = "mixed_dialogue_stereo" if stereo else "mixed_dialogue"
    return build_dialogue(Path(tmp_dir) / f"{name}{suffix}", spec, pause_s=pauses, stereo=stereo)


def load_dialogue_json(json_path: str | Path) -> Dialogue:
    """Read a ground-truth file such as ``examples/call_center.json`` (``audio`` is relative to the JSON file)."""
    json_path = Path(json_path)
    meta = json.loads(json_path.read_text())
    turns = [
        Turn(t["start_s"], t["end_s"], t["speaker"], t.get("channel", 0), t["text"], t["emotion"], t.get("source", ""))
        for t in meta["turns"]
    ]
    return Dialogue(
        path=json_path.parent / meta["audio"],
        sample_rate=meta["sample_rate"],
        channels=meta["channels"],
        turns=turns,
        duration_s=meta["duration_s"],
    )


EXAMPLE_JSON = REPO_ROOT / "examples" / "call_center.json"


def example_dialogue() -> Dialogue:
    """The bundled example ``examples/call_center.flac`` with its ground truth."""
    return load_dialogue_json(EXAMPLE_JSON)
