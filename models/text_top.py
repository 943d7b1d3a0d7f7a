"""The top layers of the sentence encoder, fine-tuned as part of a model: lower-layer token states in, a sentence
vector out.

Frozen sentence embeddings stop at about 0.58 MELD weighted F1 whatever sits on them (docs/training.md); the
encoder has to learn emotion too. Fine-tuning all of it is slow on a CPU, so the lower layers stay frozen: the
stream's text encoder emits their token states (``TextEncoderSpec.token_layer``) and training caches them once.
The top ``layers`` transformer layers are copied from the packaged encoder into the model, trained with it and
saved in its bundle, so the stream needs nothing beyond the bundle and the packaged encoder.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from emostream.models.blocks import masked_mean
from emostream.models.text_encoder import PACKAGED_ENCODERS, TextEncoderSpec


def _config(encoder: str) -> Any:  # a transformers PretrainedConfig
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(PACKAGED_ENCODERS[encoder].path(), local_files_only=True)
    if config.model_type != "bert":
        raise ValueError(f"tuned text layers need a BERT-type encoder; {encoder!r} is {config.model_type!r}")
    config._attn_implementation = "eager"  # layers used outside a PreTrainedModel must be told (else a warning)
    return config


def check_spec(hparams: dict[str, Any], spec: TextEncoderSpec) -> None:
    """A model that tunes ``text_layers`` top layers needs exactly the token states below them."""
    layers = int(hparams.get("text_layers", 0))
    if not layers:
        return
    encoder = hparams.get("text_encoder", spec.name)
    want = PACKAGED_ENCODERS[encoder].layers - layers if encoder in PACKAGED_ENCODERS else None
    if encoder != spec.name or spec.level != "token" or spec.token_layer != want:
        raise ValueError(f"text_layers {layers} of {encoder} need text_encoder {{name: {encoder}, level: token, "
                         f"token_layer: {want}}}, not {spec.to_dict()}")


class TunedTop(nn.Module):
    """The last ``layers`` layers of ``encoder``, mean-pooled and L2-normalised as sentence-transformers pool."""

    def __init__(self, encoder: str, layers: int) -> None:
        from transformers.models.bert.modeling_bert import BertLayer

        super().__init__()
        config = _config(encoder)
        if not 1 <= layers <= config.num_hidden_layers:
            raise ValueError(f"text_layers must be in [1, {config.num_hidden_layers}] for {encoder!r}, not {layers}")
        self.encoder, self.first = encoder, config.num_hidden_layers - layers
        self.layers = nn.ModuleList(BertLayer(config, layer_idx=self.first + i) for i in range(layers))

    def load_pretrained(self) -> None:
        """Starts from the packaged encoder's own weights for these layers (training only: a bundle has its own)."""
        from transformers import AutoModel

        model = AutoModel.from_pretrained(PACKAGED_ENCODERS[self.encoder].path(), local_files_only=True)
        for mine, theirs in zip(self.layers, model.encoder.layer[self.first :], strict=True):
            mine.load_state_dict(theirs.state_dict())

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B, L, D) states of layer ``first`` and their mask (B, L) → (B, D) sentence vectors."""
        x = tokens
        additive = (~mask)[:, None, None, :].to(x.dtype) * torch.finfo(x.dtype).min
        for layer in self.layers:
            out = layer(x, attention_mask=additive)
            x = out[0] if isinstance(out, tuple) else out
        return nn.functional.normalize(masked_mean(x, mask), dim=-1)
