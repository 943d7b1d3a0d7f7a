"""The models of this process behind the async service interface (``interface.py``): each call runs in a worker
thread, so that the event loop goes on serving every stream while a model computes. A cluster's services await
their Ray Serve requests instead (``stream/cluster/services.py``), with no thread in between."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import torch

from emostream.models.text_encoder import TextEncoder, TextEncoderSpec, TextEncoding


class ThreadedExtractor:
    """A feature extractor of ``models/features.py`` (stateless: safe to call from several threads at once)."""

    def __init__(self, extractor: Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.extractor = extractor

    async def extract(self, waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return await asyncio.to_thread(self._on_cpu, waves)

    def _on_cpu(self, waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """On a GPU the copy waits for the extraction to finish: in this thread, not on the event loop."""
        feats, mask = self.extractor(waves)
        return feats.cpu(), mask.cpu()


class ThreadedTextEncoder:
    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.spec: TextEncoderSpec = encoder.spec

    async def encode(self, texts: list[str]) -> TextEncoding:
        return await asyncio.to_thread(self._on_cpu, texts)

    def _on_cpu(self, texts: list[str]) -> TextEncoding:
        """As the extractor's: the copy off a GPU waits in this thread, not on the event loop."""
        enc = self.encoder.encode(texts)
        return TextEncoding(enc.sentence.cpu(), enc.tokens.cpu(), enc.mask.cpu())
