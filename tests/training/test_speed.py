"""Speed perturbation: a slower clip is longer and lower, a faster one shorter and higher; the cache keeps each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emostream.models.features import FeatureSpec
from emostream.stream.stages.vad import VadConfig
from emostream.training.cache import audio_frames
from emostream.training.speed import SPEEDS, perturb_speed
from tests import REPO_ROOT

RATE = 16000


@pytest.mark.parametrize("channel", list(SPEEDS))
def test_tempo_and_pitch_move_together(channel: str) -> None:
    factor = SPEEDS[channel]
    tone = np.sin(2 * np.pi * 200.0 * np.arange(RATE) / RATE).astype(np.float32)
    out = perturb_speed(tone, factor)
    assert out.dtype == np.float32 and abs(len(out) - RATE / factor) <= 2
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * RATE / len(out)
    assert abs(peak_hz - 200.0 * factor) < 3.0


def test_speed_channels_reach_the_features_and_are_cached(tmp_path: Path) -> None:
    audio, rate = sf.read(REPO_ROOT / "examples" / "call_center.flac", dtype="float32")
    clip = tmp_path / "turn.flac"  # the call's first turn: well under the 1,000-frame cap at any of the speeds
    sf.write(clip, audio[: 6 * rate], rate)
    spec, vad = FeatureSpec(kind="mfcc"), VadConfig()
    n = {c: len(audio_frames([clip], spec, vad, tmp_path, channel=c)[0]) for c in ("clean", "slow", "fast")}
    assert n["fast"] < n["clean"] < n["slow"]
    assert abs(n["slow"] / n["clean"] - 1 / 0.9) < 0.03 and abs(n["fast"] / n["clean"] - 1 / 1.1) < 0.03
    assert len(list((tmp_path / "audio").glob("*.npy"))) == 3  # one entry per channel
    with pytest.raises(ValueError, match="unknown audio channel 'faster'"):
        audio_frames([clip], spec, vad, tmp_path, channel="faster")
