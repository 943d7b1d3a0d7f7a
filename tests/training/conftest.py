"""Fixtures in the real corpus layouts, and the real data when this machine has it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostream.training.paths import default_data_dir

MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


def write_meld(root: Path, split: str, rows: list[tuple[str, str, str, int, int]]) -> Path:
    """A MELD CSV with (utterance, speaker, emotion, dialogue, turn) rows, the other columns filled in."""
    (root / "meld").mkdir(parents=True, exist_ok=True)
    path = root / "meld" / f"{split}_sent_emo.csv"
    lines = [MELD_HEADER]
    for i, (text, speaker, emotion, dialogue, turn) in enumerate(rows, start=1):
        quoted = '"' + text.replace('"', '""') + '"'
        lines.append(f'{i},{quoted},{speaker},{emotion},neutral,{dialogue},{turn},1,1,"00:00:01,000","00:00:02,000"\n')
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_ravdess_clip(root: Path, emotion: str, statement: str, actor: int, rep: str = "01",
                       intensity: str = "01") -> Path:
    """A 1.5 s FLAC (silence, a harmonic tone, silence) under the RAVDESS name and folder scheme."""
    folder = root / "ravdess" / f"Actor_{actor:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    tone = 0.3 * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 720), start=1))
    audio = np.concatenate([np.zeros(8000), tone * (1 + int(emotion) / 8), np.zeros(8000)]).astype(np.float32)
    path = folder / f"03-01-{emotion}-{intensity}-{statement}-{rep}-{actor:02d}.flac"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path


@pytest.fixture
def meld_csv():
    """``write_meld(root, split, rows)``."""
    return write_meld


@pytest.fixture
def ravdess_clip():
    """``write_ravdess_clip(root, emotion, statement, actor, rep="01", intensity="01")``."""
    return write_ravdess_clip


@pytest.fixture
def real_data() -> Path:
    data = default_data_dir()
    if not (data / "meld").is_dir() or not (data / "ravdess").is_dir():
        pytest.skip(f"real corpora not found at {data} (set EMO_STREAM_DATA to the folder with meld/ and ravdess/)")
    return data
