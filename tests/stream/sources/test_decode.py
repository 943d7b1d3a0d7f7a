"""Decoding: any rate and channel count becomes 16 kHz int16 per channel, faithfully."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from emostream.stream.errors import UserError
from emostream.stream.sources.decode import probe, read_blocks


@pytest.mark.parametrize("rate, channels, subtype", [(44100, 2, "PCM_16"), (8000, 1, "PCM_U8"), (48000, 6, "FLOAT"),
                                                     (16000, 1, "PCM_24")])
def test_resampled_tone_keeps_its_pitch_and_length(tmp_path, rate, channels, subtype):
    t = np.arange(int(rate * 3.0)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone * (c + 1) / channels for c in range(channels)], axis=1)
    path = tmp_path / f"tone.{'wav'}"
    sf.write(path, data, rate, subtype=subtype)
    out = np.concatenate(list(read_blocks(probe(path))), axis=1)
    assert out.shape[0] == channels
    assert abs(out.shape[1] - 48000) <= 16
    spectrum = np.abs(np.fft.rfft(out[-1, 8000:40000].astype(np.float64)))
    assert abs(np.argmax(spectrum) * 16000 / 32000 - 440) <= 1.0
    assert abs(np.abs(out[-1]).max() / 32767 - 0.5) < 0.03  # the last channel holds the loudest copy


def test_nan_and_inf_samples_become_silence(tmp_path):
    data = np.full(16000, 0.25, dtype=np.float32)
    data[100:200] = np.nan
    data[300] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    out = np.concatenate(list(read_blocks(probe(path))), axis=1)[0]
    assert (out[100:200] == 0).all() and out[300] == 0
    assert out[50] == round(0.25 * 32767)


def test_too_low_sample_rate_is_refused(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, np.zeros(4000, dtype=np.int16), 4000)
    with pytest.raises(UserError, match="too low"):
        probe(path)
