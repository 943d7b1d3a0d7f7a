"""Whisper's encoder in PyTorch, from the packaged CTranslate2 weights, so that an inner layer's states can be read.

Across corpora the middle of Whisper's encoder carries emotion better than its output: a linear probe on the states
after block 2 of tiny.en's 4 (with the eGeMAPS functionals) scored 0.52 UA on nEMO left out whole, the output 0.43
(docs/cross_corpus.md, "Which encoder layer"). CTranslate2 returns only the encoder's output, so this module reads
the encoder's weights from the converted ``model.bin`` (the layout CTranslate2's converter writes:
``ctranslate2/specs/model_spec.py``, ``save``) and runs blocks ``1..layer`` itself. Through every block its states
match CTranslate2's int8 output to a correlation of 0.999 (``tests/models/test_whisper_layers.py``).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

# CTranslate2's DataType enum, in order (include/ctranslate2/types.h); bfloat16 has no numpy type.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16)
_BINARY_VERSIONS = (5, 6)


class BadWeights(ValueError):
    """A model.bin this reader does not understand; the message names the file and what was wrong."""


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n)[:-1].decode()


def encoder_weights(path: Path) -> dict[str, np.ndarray]:
    """The ``encoder/...`` variables of a CTranslate2 Whisper ``model.bin``, as float32 (int8 weights are scaled
    back with their ``weight_scale``); the decoder's bytes are skipped, not read."""
    raw: dict[str, np.ndarray] = {}
    with path.open("rb") as f:
        (version,) = struct.unpack("<I", f.read(4))
        if version not in _BINARY_VERSIONS:
            raise BadWeights(f"{path}: CTranslate2 binary version {version}; this reader knows {_BINARY_VERSIONS}")
        if (spec := _string(f)) != "WhisperSpec":
            raise BadWeights(f"{path}: a {spec!r} model, not Whisper")
        f.read(4)  # the spec's revision
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            name = _string(f)
            (rank,) = struct.unpack("<B", f.read(1))
            shape = struct.unpack(f"<{rank}I", f.read(4 * rank))
            dtype, size = struct.unpack("<BI", f.read(5))
            if not name.startswith("encoder/"):
                f.seek(size, 1)
                continue
            if dtype >= len(_DTYPES):
                raise BadWeights(f"{path}: {name} has data type {dtype} (bfloat16?), which this reader cannot take")
            raw[name.removeprefix("encoder/")] = np.frombuffer(f.read(size), dtype=_DTYPES[dtype]).reshape(shape)
    if not raw:
        raise BadWeights(f"{path}: no encoder variables")
    out = {}
    for name, value in raw.items():
        if name.endswith("weight_scale"):
            continue
        value = value.astype(np.float32)
        if (scale := raw.get(name + "_scale")) is not None:  # int8: per output row
            value = value / scale.astype(np.float32).reshape(-1, *[1] * (value.ndim - 1))
        out[name] = value
    return out


class WhisperEncoderLayers(torch.nn.Module):
    """Log-mel ``(B, 80, T)`` → the residual stream after block ``layer`` ``(B, T // 2, dim)``.

    Pre-norm blocks as in Whisper: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``; ``layer`` equal to the
    number of blocks also applies the final layer norm, giving the encoder's output as CTranslate2 returns it.
    Blocks past ``layer`` are not built.
    """

    def __init__(self, path: Path, layer: int) -> None:
        super().__init__()
        w = encoder_weights(path)
        self.blocks_total = sum(1 for k in w if k.endswith("ffn/linear_0/weight"))
        if not 1 <= layer <= self.blocks_total:
            raise ValueError(f"encoder layer {layer} of {path}: it has blocks 1..{self.blocks_total}")
        self.layer = layer
        self.heads = int(w.pop("num_heads"))
        keep = {k: v for k, v in w.items() if not (m := re.match(r"layer_(\d+)/", k)) or int(m[1]) < layer}
        if layer < self.blocks_total:
            keep = {k: v for k, v in keep.items() if not k.startswith("layer_norm/")}
        for name, value in keep.items():
            self.register_buffer(name.replace("/", "__"), torch.from_numpy(value.copy()))
        self.dim = int(keep["conv1/bias"].shape[0])
        self.n_mels = int(keep["conv1/weight"].shape[1])

    def _w(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace("/", "__"))

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self._w(f"{name}/gamma"), self._w(f"{name}/beta"))

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self._w(f"{name}/weight"), self._w(f"{name}/bias"))

    def _block(self, x: torch.Tensor, i: int, keep: int | None = None) -> torch.Tensor:
        """Block ``i`` (0-based) on ``x``; with ``keep``, only the first ``keep`` frames' outputs.

        Attention reads keys and values of every frame, but a frame's output needs its own query, and the
        feed-forward part is per frame: a last block asked for the speech frames alone skips the rest of the
        window's padding (about half of a 10 s window's block for a 3 s utterance), and gives the same states.
        """
        block = f"layer_{i}"
        batch, frames, dim = x.shape
        normed = self._norm(x, f"{block}/self_attention/layer_norm")
        fused = f"{block}/self_attention/linear_0"
        weight, bias = self._w(f"{fused}/weight"), self._w(f"{fused}/bias")
        keep = frames if keep is None else min(keep, frames)
        q = F.linear(normed[:, :keep], weight[:dim], bias[:dim])  # CTranslate2 fuses the projections as [q; k; v]
        k, v = F.linear(normed, weight[dim:], bias[dim:]).view(batch, frames, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        q = q.view(batch, keep, self.heads, -1).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, keep, dim)
        x = x[:, :keep] + self._linear(attended, f"{block}/self_attention/linear_1")
        hidden = F.gelu(self._linear(self._norm(x, f"{block}/ffn/layer_norm"), f"{block}/ffn/linear_0"))
        return x + self._linear(hidden, f"{block}/ffn/linear_1")

    @torch.inference_mode()
    def blocks(self, mel: torch.Tensor, keep: int | None = None) -> list[torch.Tensor]:
        """The states after the convolutions, then after each block up to ``layer`` (the encoder's last block
        with its final layer norm, as ``forward`` gives it); ``keep`` cuts the last to its first ``keep`` frames."""
        x = F.gelu(F.conv1d(mel, self._w("conv1/weight"), self._w("conv1/bias"), padding=1))
        x = F.gelu(F.conv1d(x, self._w("conv2/weight"), self._w("conv2/bias"), stride=2, padding=1))
        x = x.transpose(1, 2) + self._w("position_encodings/encodings")[: x.shape[2]]
        out = [x]
        for i in range(self.layer):
            x = self._block(x, i, keep if i == self.layer - 1 else None)
            out.append(x)
        if self.layer == self.blocks_total:
            out[-1] = self._norm(x, "layer_norm")
        return out

    def forward(self, mel: torch.Tensor, keep: int | None = None) -> torch.Tensor:
        """The states after block ``layer``: of every frame, or of the first ``keep`` (the speech; the same
        values, for less work)."""
        return self.blocks(mel, keep)[-1]
