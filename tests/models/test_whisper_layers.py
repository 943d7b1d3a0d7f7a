"""Whisper's encoder run in PyTorch from the packaged CTranslate2 weights: through every block it gives what
CTranslate2 gives (so the weights are read right), an inner block gives different states on the same frames, the
last block run on the speech alone gives the whole window's states, bfloat16 stays close to float32, and a file,
a block or a precision it cannot take is refused with what was wrong."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.whisper_layers import BadWeights, WhisperEncoderLayers, encoder_weights
from emostream.models.whisper_states import WHISPER_MODELS, WhisperStates, native_bfloat16, padded_mel


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


def test_the_last_block_on_the_speech_alone_gives_the_same_states(turn):
    """The last block skips the window's padding (queries and feed-forward of the speech frames only); keys and
    values still cover every frame, so the speech frames' states are those of the whole window's pass."""
    encoder = make_extractor(spec("tiny.en", 2))
    assert isinstance(encoder, WhisperStates) and encoder.layers is not None
    mel = torch.from_numpy(padded_mel(encoder.mel, turn.numpy(), 10.0))[None]
    speech = -(-len(turn) // 320)
    whole = encoder.layers(mel)
    assert whole.shape[1] == 500 and speech < 250  # most of the window is padding: the cut saves work
    cut = encoder.layers(mel, keep=speech)
    assert cut.shape[1] == speech
    torch.testing.assert_close(cut, whole[:, :speech], rtol=1e-5, atol=1e-5)
    feats, mask = encoder([turn])
    torch.testing.assert_close(feats[0, mask[0]], whole[0, :speech], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not native_bfloat16(torch.device("cpu")), reason="this CPU has no bfloat16 arithmetic")
def test_bfloat16_blocks_stay_close_to_float32(turn):
    """bfloat16 arithmetic (where the CPU has it) moves the states little: a relative 0.006 on RAVDESS clips, against
    0.067 for int8 weights (docs/benchmarks.md, "Front ends")."""
    exact, _ = make_extractor(spec("tiny.en", 2))([turn])
    fast, mask = make_extractor(spec("tiny.en", 2), precision="bfloat16")([turn])
    assert fast.dtype == torch.float32 and bool(mask.all())
    assert not torch.equal(fast, exact)  # the precision reached the blocks
    assert float((fast - exact).norm() / exact.norm()) < 0.015
    assert np.corrcoef(fast.numpy().ravel(), exact.numpy().ravel())[0, 1] > 0.9995


def test_a_precision_it_cannot_serve_is_refused():
    with pytest.raises(ValueError, match="precision 'int4': use one of float32, bfloat16"):
        make_extractor(spec("tiny.en", 2), precision="int4")  # type: ignore[arg-type]
