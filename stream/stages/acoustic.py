"""Stage: utterance audio → acoustic feature frames, on the model's device, as the bundle specifies.

Like ASR, extraction starts before the endpoint, on the exact ``EndCandidate`` (the utterance as the
endpoint will cut it, once the pause reaches the post-roll): a heavy front end (Whisper encoder states) is
then hidden behind the rest of the hangover.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch

from emostream.models.features import Extractor
from emostream.stream.messages import Acoustic, EndCandidate, Utterance
from emostream.stream.stages.stage import Speculation, Stage, elapsed_ms


class AcousticFeatures(Stage[Utterance | EndCandidate, Acoustic | EndCandidate]):
    name = "features"
    accepts = (Utterance, EndCandidate)

    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor  # shared by every stream: stateless, safe to call from several threads
        self.speculation: Speculation[torch.Tensor] = Speculation()

    def _extract(self, audio: np.ndarray) -> torch.Tensor:
        feats, mask = self.extractor([torch.from_numpy(audio)])
        return feats[0, : int(mask[0].sum())].cpu()

    async def process(self, item: Utterance | EndCandidate) -> list[Acoustic | EndCandidate]:
        if isinstance(item, EndCandidate):
            if item.exact:  # features are not forgiving of a missing tail, unlike ASR
                self.speculation.start(item.key, asyncio.to_thread(self._extract, item.audio))
            return [item]
        t0 = time.monotonic()
        frames = await (self.speculation.take(item.key) or asyncio.to_thread(self._extract, item.audio))
        latency = item.latency_ms | {"features": elapsed_ms(t0, time.monotonic())}
        return [Acoustic(item, frames, latency)]

    async def flush(self) -> list[Acoustic | EndCandidate]:
        self.speculation.drop()
        return []
