"""Speed perturbation (Ko et al., 2015): a clip played 10 % slower or faster, its pitch moving with its tempo.

Speakers and corpora differ in speaking rate and voice pitch; hearing each training clip at other rates as well
is the standard cheap augmentation of speech recognisers, and one of those issue 14 asks to measure for emotion.
Deterministic: a clip's slow and fast versions are the same in every run, so their features are computed once.
"""

from __future__ import annotations

import numpy as np
import soxr

from emostream.stream.stages.vad import SAMPLE_RATE

SPEEDS = {"slow": 0.9, "fast": 1.1}  # channel name -> playback rate


def perturb_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """16 kHz ``audio`` played ``factor`` times as fast: read as if it were recorded at ``factor`` x 16 kHz and
    resampled to 16 kHz (``1 / factor`` as long, every frequency ``factor`` times as high)."""
    return soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)
