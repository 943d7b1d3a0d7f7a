"""A simulated telephone line: what a call-center recording does to a voice before emo-stream hears it.

The narrow-band chain of the PSTN: down to 8 kHz, the 300-3400 Hz voice band, a level change of up to ±6 dB,
G.711 companding (mu-law as in North America and Japan, A-law elsewhere), optionally background noise at a given
signal-to-noise ratio and lost 20 ms packets (concealed by silence, as the simplest jitter buffers do), and back up
to 16 kHz as the stream's own resampler does. Used as training augmentation and as an evaluation condition; every
draw comes from ``seed``, so a clip's telephone version is the same in every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr
from scipy import signal

SAMPLE_RATE = 16000
LINE_RATE = 8000
_BAND = signal.butter(4, (300.0, 3400.0), btype="bandpass", fs=LINE_RATE, output="sos")


@dataclass(frozen=True)
class PhoneLine:
    """One line's settings; ``snr_db``/``loss`` of None or 0 leave that impairment out."""

    law: str = "mulaw"  # "mulaw" or "alaw"
    level_db: float = 6.0  # the level changes uniformly within ±level_db
    snr_db: tuple[float, float] | None = None  # background noise at an SNR drawn from this range
    loss: float = 0.0  # fraction of 20 ms packets lost

    def __post_init__(self) -> None:
        if self.law not in ("mulaw", "alaw"):
            raise ValueError(f"telephone law must be 'mulaw' or 'alaw', not {self.law!r}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"telephone packet loss must be in [0, 1), not {self.loss}")


def mulaw(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law at 8 bits: compress, quantise, expand."""
    mu = 255.0
    c = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    c = np.round(c * 127.5) / 127.5
    return np.sign(c) * np.expm1(np.abs(c) * np.log1p(mu)) / mu


def alaw(x: np.ndarray) -> np.ndarray:
    """G.711 A-law at 8 bits: compress, quantise, expand."""
    a = 87.6
    ax = np.abs(x)
    small = ax < 1 / a
    c = np.where(small, a * ax, 1 + np.log(np.maximum(a * ax, 1.0))) / (1 + np.log(a))
    c = np.round(c * 127.5) / 127.5
    y = np.where(c < 1 / (1 + np.log(a)), c * (1 + np.log(a)) / a, np.exp(c * (1 + np.log(a)) - 1) / a)
    return np.sign(x) * y


def telephone(audio: np.ndarray, seed: int, line: PhoneLine = PhoneLine()) -> np.ndarray:
    """16 kHz float audio in, the same audio as heard through ``line``, 16 kHz float32 out."""
    rng = np.random.default_rng(seed)
    x = signal.sosfilt(_BAND, soxr.resample(audio.astype(np.float32), SAMPLE_RATE, LINE_RATE))
    x = x * 10.0 ** (rng.uniform(-line.level_db, line.level_db) / 20.0)
    if line.snr_db is not None:
        power = float(np.mean(x**2)) + 1e-12
        snr = rng.uniform(*line.snr_db)
        noise = signal.sosfilt(_BAND, rng.standard_normal(len(x)))  # line noise is band-limited too
        x = x + noise * np.sqrt(power / (np.mean(noise**2) + 1e-12) / 10.0 ** (snr / 10.0))
    x = np.clip(x, -1.0, 1.0)
    x = mulaw(x) if line.law == "mulaw" else alaw(x)
    if line.loss:
        packet = LINE_RATE // 50
        for start in range(0, len(x), packet):
            if rng.random() < line.loss:
                x[start : start + packet] = 0.0
    return soxr.resample(x.astype(np.float32), LINE_RATE, SAMPLE_RATE).astype(np.float32)
