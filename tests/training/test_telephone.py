"""The simulated phone line: it keeps the voice band, removes what a phone cannot carry, and is repeatable."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from emostream.training.telephone import PhoneLine, alaw, mulaw, telephone

RATE = 16000


def tone(freq: float, seconds: float = 1.0, level: float = 0.3) -> np.ndarray:
    return (level * np.sin(2 * np.pi * freq * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


def db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x[RATE // 10 : -RATE // 10] ** 2) + 1e-20)


def test_voice_band_passes_and_the_rest_is_cut() -> None:
    flat = PhoneLine(level_db=0.0)
    assert abs(db(telephone(tone(1000), 1, flat)) - db(tone(1000))) < 1.5
    assert db(telephone(tone(6000), 1, flat)) < db(tone(6000)) - 40  # above 4 kHz nothing survives 8 kHz sampling
    assert db(telephone(tone(100), 1, flat)) < db(tone(100)) - 15  # below 300 Hz the band filter cuts


@pytest.mark.parametrize("law", [mulaw, alaw])
def test_companding_error_is_relative(law: Callable[[np.ndarray], np.ndarray]) -> None:
    x = np.linspace(-0.9, 0.9, 2001)
    err = np.abs(law(x) - x)
    assert err.max() < 0.03 and err[np.abs(x) < 0.01].max() < 0.002  # quiet samples keep fine steps


def test_repeatable_per_seed_and_impairments_apply() -> None:
    speech_like = tone(440) + tone(1300, level=0.1)
    line = PhoneLine(snr_db=(5.0, 5.0), loss=0.2)
    a, b, c = telephone(speech_like, 7, line), telephone(speech_like, 7, line), telephone(speech_like, 8, line)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    clean = telephone(speech_like, 7, PhoneLine(level_db=0.0))
    assert len(a) == len(clean) == len(speech_like) and a.dtype == np.float32
    packets = np.abs(a[: len(a) // 320 * 320].reshape(-1, 320))[:, 40:280]  # 20 ms each, resampler edges aside
    assert (packets.max(1) < 0.01).sum() >= 0.05 * len(packets)  # lost packets are silent, noise and all
    assert (np.abs(clean[: len(a) // 320 * 320].reshape(-1, 320))[:, 40:280].max(1) > 0.1).all()
    with pytest.raises(ValueError, match="law must be"):
        PhoneLine(law="g729")
