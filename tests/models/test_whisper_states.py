"""Whisper encoder states as features: the packaged models assemble and load offline, frames line up with the
audio, long audio is encoded window by window, and bad specs are refused with the key named."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.whisper_states import WHISPER_MODELS, WhisperStates, encode_padded


@pytest.fixture(scope="module")
def speech(example_dialogue) -> np.ndarray:
    audio, _ = sf.read(example_dialogue.path, dtype="float32")
    return audio


@pytest.mark.parametrize("name", sorted(WHISPER_MODELS))
def test_states_are_the_encoder_output_over_the_voiced_frames(name, speech):
    spec = FeatureSpec.from_dict({"kind": "whisper", "whisper": name, "hop_ms": 20.0, "deltas": False})
    extractor = make_extractor(spec)
    clips = [speech[16000 : 16000 + 52_000], speech[80_000 : 80_000 + 16_000]]
    feats, mask = extractor([torch.from_numpy(c) for c in clips])
    assert feats.shape == (2, 163, WHISPER_MODELS[name].dim)  # ceil(52000 / 320) frames, 20 ms each
    assert mask.sum(1).tolist() == [163, 50]
    assert not feats[1, 50:].any()
    assert isinstance(extractor, WhisperStates)
    direct = np.asarray(encode_padded(extractor.model, clips[0], 10.0))[0, :163]
    assert np.allclose(feats[0].numpy(), direct, atol=1e-5)
    assert feats[0].std(0).mean() > 0.05  # states vary along the utterance: not padding


def test_audio_longer_than_whisper_window_is_encoded_window_by_window(speech):
    extractor = make_extractor(FeatureSpec(kind="whisper", hop_ms=20.0, deltas=False, max_frames=1700))
    audio = np.concatenate([speech, speech[: 5 * 16000]])  # 34.75 s: one full window and 4.75 s more
    feats, mask = extractor([torch.from_numpy(audio)])
    assert int(mask.sum()) == feats.shape[1] == 1700  # of ceil(556000 / 320) = 1738: capped at max_frames
    first = np.asarray(encode_padded(extractor.model, audio[: 30 * 16000], 10.0))[0]
    second = np.asarray(encode_padded(extractor.model, audio[30 * 16000 : 34 * 16000], 10.0))[0, :200]
    assert np.allclose(feats[0, :1500].numpy(), first, atol=1e-5)
    assert np.allclose(feats[0, 1500:].numpy(), second, atol=1e-5)


@pytest.mark.parametrize(("data", "key"), [
    ({"kind": "whisper"}, "hop_ms: 20 and deltas: false"),
    ({"kind": "whisper", "hop_ms": 20.0, "deltas": False, "whisper": "large-v3"}, "whisper 'large-v3' is not packaged"),
    ({"kind": "whisper", "hop_ms": 20.0, "deltas": False, "whisper_window_s": 60}, "whisper_window_s 60"),
])
def test_bad_whisper_spec_names_the_key(data, key):
    with pytest.raises(ValueError, match=key):
        FeatureSpec.from_dict(data)
