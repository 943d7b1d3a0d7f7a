"""The feature cache keeps the Whisper blocks' bfloat16 frames (what emo-eval --precision and the cross-corpus
table score a stream's arithmetic with) apart from the float32 ones that training reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.features import FeatureSpec
from emostream.models.whisper_states import native_bfloat16
from emostream.stream.stages.vad import VadConfig
from emostream.training.cache import audio_frames
from tests import REPO_ROOT


@pytest.mark.skipif(not native_bfloat16(torch.device("cpu")), reason="this CPU has no bfloat16 arithmetic")
def test_bfloat16_frames_are_cached_apart_and_close_to_float32(tmp_path: Path) -> None:
    audio, rate = sf.read(REPO_ROOT / "examples" / "call_center.flac", dtype="float32")
    clip = tmp_path / "turn.flac"
    sf.write(clip, audio[: 6 * rate], rate)
    spec = FeatureSpec(kind="whisper", whisper_layer=2, hop_ms=20.0, deltas=False)
    exact = audio_frames([clip], spec, VadConfig(), tmp_path)[0]
    fast = audio_frames([clip], spec, VadConfig(), tmp_path, precision="bfloat16")[0]
    assert len(list((tmp_path / "audio").glob("*.npy"))) == 2  # one entry per precision
    assert fast.shape == exact.shape and not torch.equal(fast, exact)
    assert float((fast - exact).norm() / exact.norm()) < 0.015
    again = audio_frames([clip], spec, VadConfig(), tmp_path, precision="bfloat16")[0]
    assert np.array_equal(again.numpy(), fast.numpy())  # read back from its own entry
