"""Live resampling: the same signal as soxr's whole-file resampling, at a few milliseconds of delay where soxr's
streaming resampler holds back tens."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from emostream.stream.sources.resample import LiveResampler


def tones(rate: int, channels: int, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 8000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1800 * t)
    return np.stack([np.roll(x, 37 * c) for c in range(channels)]).astype(np.int16)


def stream(resample, x: np.ndarray, chunk: int, target: int, rate: int) -> tuple[np.ndarray, list[float]]:
    """Feeds ``x`` in chunks; returns the whole output and, after each chunk, how much output (ms) was held back."""
    out, held, fed, got = [], [], 0, 0
    for k in range(0, x.shape[1], chunk):
        y = resample(x[:, k : k + chunk])
        out.append(y)
        fed, got = fed + x[:, k : k + chunk].shape[1], got + y.shape[1]
        held.append((fed * target / rate - got) / target * 1000)
    return np.concatenate(out, axis=1), held


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (8000, 2), (48000, 1), (32000, 2), (44100, 1),
                                                 (16000, 1)])
def test_live_resampling_matches_whole_file_resampling(rate: int, channels: int) -> None:
    x = tones(rate, channels)
    r = LiveResampler(rate, 16000, channels)
    body, held = stream(r, x, rate // 50, 16000, rate)
    y = np.concatenate([body, r.flush()], axis=1)
    ref = soxr.resample(x.T.astype(np.float32), rate, 16000).T
    assert y.shape == ref.shape == (channels, 32000)
    assert np.abs(y[:, 200:-200].astype(float) - ref[:, 200:-200]).max() <= 2.0  # int16 units
    assert max(held[5:]) <= (4.0 if rate % 16000 == 0 or 16000 % rate == 0 else 60.0)


def test_soxr_streaming_holds_back_tens_of_milliseconds_that_the_live_resampler_does_not() -> None:
    """Why the module exists: the measurement its docstring quotes (8 kHz telephony, 20 ms chunks)."""
    x = tones(8000, 1, seconds=4.0)
    s = soxr.ResampleStream(8000, 16000, 1, dtype="int16")
    _, soxr_held = stream(lambda b: s.resample_chunk(b.T).T, x, 160, 16000, 8000)
    _, live_held = stream(LiveResampler(8000, 16000, 1), x, 160, 16000, 8000)
    assert np.mean(soxr_held[20:]) > 30.0 and max(soxr_held[20:]) > 60.0
    assert max(live_held[20:]) <= 4.0
