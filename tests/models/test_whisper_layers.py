"""Whisper's encoder run in PyTorch from the packaged CTranslate2 weights: through every block it gives what
CTranslate2 gives (so the weights are read right), an inner block gives different states on the same frames,
and a file or a block it cannot take is refused with what was wrong."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.whisper_layers import BadWeights, WhisperEncoderLayers, encoder_weights
from emostream.models.whisper_states import WHISPER_MODELS, WhisperStates


@pytest.fixture(scope="module")
def turn(example_dialogue) -> torch.Tensor:
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    first = example_dialogue.turns[0]
    return torch.from_numpy(audio[int(first.start_s * sr) : int(first.end_s * sr)])


def spec(name: str, layer: int) -> FeatureSpec:
    return FeatureSpec.from_dict({"kind": "whisper", "whisper": name, "hop_ms": 20.0, "deltas": False,
                                  "whisper_layer": layer})


@pytest.mark.parametrize("name", sorted(WHISPER_MODELS))
def test_every_block_reproduces_ctranslate2s_encoder_output(name, turn):
    """float32 here against CTranslate2's int8: the same states up to quantisation noise."""
    ours, ours_mask = make_extractor(spec(name, WHISPER_MODELS[name].blocks))([turn])
    theirs, theirs_mask = make_extractor(spec(name, 0))([turn])
    assert torch.equal(ours_mask, theirs_mask) and ours.shape == theirs.shape
    valid = ours_mask[0]
    corr = np.corrcoef(ours[0, valid].numpy().ravel(), theirs[0, valid].numpy().ravel())[0, 1]
    assert corr > 0.995


def test_an_inner_block_gives_other_states_on_the_same_frames(turn):
    inner = make_extractor(spec("tiny.en", 2))
    assert isinstance(inner, WhisperStates) and inner.layers is not None and len(inner.layers.state_dict()) < 40
    feats, mask = inner([turn])
    out, _ = make_extractor(spec("tiny.en", 0))([turn])
    assert feats.shape == out.shape and int(mask.sum()) == -(-len(turn) // 320)
    corr = np.corrcoef(feats[0].numpy().ravel(), out[0].numpy().ravel())[0, 1]
    assert abs(corr) < 0.9  # not the output under another name
    assert feats[0].std(0).mean() > 0.05  # states vary along the utterance: not padding


def test_bad_weights_and_blocks_are_refused_with_the_reason(tmp_path):
    path = WHISPER_MODELS["tiny.en"].path() / "model.bin"
    with pytest.raises(ValueError, match=r"blocks 1\.\.4"):
        WhisperEncoderLayers(path, 5)
    with pytest.raises(ValueError, match=r"whisper_layer 7 is not a block of .tiny\.en."):
        spec("tiny.en", 7)
    old = tmp_path / "old.bin"
    old.write_bytes(struct.pack("<I", 2))
    with pytest.raises(BadWeights, match=f"{old}: CTranslate2 binary version 2"):
        encoder_weights(old)
    other = tmp_path / "other.bin"
    name = b"TransformerSpec\0"
    other.write_bytes(struct.pack("<IH", 6, len(name)) + name)
    with pytest.raises(BadWeights, match="a 'TransformerSpec' model, not Whisper"):
        encoder_weights(other)
