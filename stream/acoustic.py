"""Stage: utterance audio → acoustic feature frames (torchaudio, on the model's device), as the bundle specifies."""

from __future__ import annotations

import asyncio
import time

import torch

from emostream.models.features import FeatureExtractor, FeatureSpec
from emostream.stream.messages import Acoustic, Utterance
from emostream.stream.stage import Stage, elapsed_ms


class AcousticFeatures(Stage[Utterance, Acoustic]):
    name = "features"
    accepts = (Utterance,)

    def __init__(self, spec: FeatureSpec, device: torch.device) -> None:
        self.extractor = FeatureExtractor(spec).to(device)

    def _extract(self, utt: Utterance) -> torch.Tensor:
        feats, mask = self.extractor([torch.from_numpy(utt.audio)])
        return feats[0, : int(mask[0].sum())].cpu()

    async def process(self, item: Utterance) -> list[Acoustic]:
        t0 = time.monotonic()
        frames = await asyncio.to_thread(self._extract, item)
        latency = item.latency_ms | {"features": elapsed_ms(t0, time.monotonic())}
        return [Acoustic(item, frames, latency)]
