"""Tuned top layers of the text encoder (models/text_top.py): before tuning they reproduce the frozen encoder
exactly, so training starts from the pretrained sentence vectors; a mismatched spec is refused by name."""

from __future__ import annotations

import pytest
import torch

from emostream.models.interface import ModelDims, build_model
from emostream.models.text_encoder import TextEncoder, TextEncoderSpec
from emostream.models.text_top import TunedTop, check_spec
from emostream.training.config import ConfigError, parse_config

TEXTS = ["This is the third time I have called and I am furious.", "Thanks, that's great!", "ok"]


@pytest.mark.parametrize("layers", [1, 2])
def test_pretrained_top_layers_on_lower_token_states_give_the_frozen_sentence_vector(layers: int) -> None:
    torch.set_num_threads(1)
    spec = TextEncoderSpec(level="token", token_layer=6 - layers)
    enc = TextEncoder(spec).encode(TEXTS)
    assert enc.tokens.shape[:2] == enc.mask.shape
    top = TunedTop("all-MiniLM-L6-v2", layers)
    top.load_pretrained()
    top.eval()
    with torch.no_grad():
        sentence = top(enc.tokens, enc.mask)
    torch.testing.assert_close(sentence, enc.sentence, atol=1e-5, rtol=1e-4)
    untrained = TunedTop("all-MiniLM-L6-v2", layers).eval()  # random layers do not: the test can fail
    with torch.no_grad():
        assert not torch.allclose(untrained(enc.tokens, enc.mask), enc.sentence, atol=1e-2)


def test_the_model_uses_token_states_for_the_current_utterance_only() -> None:
    from emostream.models.collate import PastUtterance, UtteranceInput, collate

    torch.manual_seed(0)
    dims = ModelDims(num_classes=7, audio_dim=4, text_dim=384, context_size=2)
    model = build_model("late_fusion_baseline", dims, {"text_layers": 2}).eval()
    enc = TextEncoder(TextEncoderSpec(level="token", token_layer=4)).encode(TEXTS[:2])
    past = (PastUtterance(sentence=enc.sentence[1], audio_stats=torch.zeros(8), speaker="b"),)
    item = UtteranceInput(audio=None, sentence=enc.sentence[0], tokens=enc.tokens[0, : int(enc.mask[0].sum())],
                          speaker="a", context=past)
    with torch.no_grad():
        base = model.branch_logits(collate([item], dims))[1]
        other_tokens = model.branch_logits(collate([UtteranceInput(audio=None, sentence=enc.sentence[0],
                                                                   tokens=enc.tokens[1], speaker="a",
                                                                   context=past)], dims))[1]
    assert not torch.allclose(base, other_tokens)  # the current utterance's words come from its tokens


@pytest.mark.parametrize("encoder, fragment", [
    ({}, "need text_encoder {name: all-MiniLM-L6-v2, level: token, token_layer: 4}"),
    ({"level": "token"}, "token_layer: 4"),
    ({"level": "token", "token_layer": 3}, "token_layer: 4"),
])
def test_a_spec_without_the_right_token_states_is_refused(encoder: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match="text_layers 2") as err:
        check_spec({"text_layers": 2}, TextEncoderSpec(**encoder))
    assert fragment in str(err.value)
    check_spec({"text_layers": 2}, TextEncoderSpec(level="token", token_layer=4))  # the right one passes
    check_spec({}, TextEncoderSpec(**encoder))  # a model without tuned layers takes any spec


def test_training_config_names_the_key() -> None:
    import yaml

    from tests import REPO_ROOT

    data = yaml.safe_load((REPO_ROOT / "configs" / "whisper_baseline.yaml").read_text())
    data["model"]["hparams"]["text_layers"] = 2
    data["text_encoder"] = {"level": "token", "token_layer": 2}
    with pytest.raises(ConfigError, match=r"^model\.hparams: text_layers 2"):
        parse_config(data)
    data["text_encoder"] = {"level": "sentence", "token_layer": 2}
    with pytest.raises(ConfigError, match=r"text encoder token_layer 2 needs level: token"):
        parse_config(data)
