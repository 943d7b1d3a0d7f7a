"""Stage: utterance audio → acoustic feature frames, on the model's device, as the bundle specifies.

Like ASR, extraction starts before the endpoint, on the exact ``EndCandidate`` (the utterance as the
endpoint will cut it, once the pause reaches the post-roll): a heavy front end (Whisper encoder states) is
then hidden behind the rest of the hangover. When those states are the ASR's own encoder output
(``SharedEncodes``), the stage takes them from the utterance's one encoder pass, which the final decode shares.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

import numpy as np
import torch

from emostream.stream.messages import Acoustic, EndCandidate, Ending, Utterance
from emostream.stream.services.interface import FeatureExtractor
from emostream.stream.stages.encodes import SharedEncodes
from emostream.stream.stages.stage import Speculation, Stage, elapsed_ms


class AcousticFeatures(Stage[Utterance | EndCandidate, Acoustic | EndCandidate]):
    name = "features"
    accepts = (Utterance, EndCandidate)

    def __init__(self, extractor: FeatureExtractor | SharedEncodes) -> None:
        self.extractor = extractor  # shared by every stream
        self.speculation: Speculation[torch.Tensor] = Speculation()

    async def _extract(self, extractor: FeatureExtractor, audio: np.ndarray) -> torch.Tensor:
        feats, mask = await extractor.extract([torch.from_numpy(audio)])
        return feats[0, : int(mask[0].sum())]

    def _frames(self, cut: Ending) -> Coroutine[Any, Any, torch.Tensor]:
        if isinstance(self.extractor, SharedEncodes):
            return self.extractor.frames(cut.key, cut.audio)
        return self._extract(self.extractor, cut.audio)

    async def process(self, item: Utterance | EndCandidate) -> list[Acoustic | EndCandidate]:
        if isinstance(item, EndCandidate):
            if item.exact:  # features are not forgiving of a missing tail, unlike ASR
                self.speculation.start(item.key, self._frames(item))
            return [item]
        t0 = time.monotonic()
        frames = await (self.speculation.take(item.key) or self._frames(item))
        latency = item.latency_ms | {"features": elapsed_ms(t0, time.monotonic())}
        return [Acoustic(item, frames, latency)]

    async def flush(self) -> list[Acoustic | EndCandidate]:
        self.speculation.drop()
        return []
