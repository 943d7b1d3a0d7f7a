"""Stage: acoustic frames standardised by their speaker's running statistics, for bundles trained that way.

Each stream keeps its own statistics per speaker label (a channel name, or the mono stream's speaker tracker),
so a caller's voice and line shape only that caller's normalisation; see models/speaker_norm.py for why.
"""

from __future__ import annotations

import time
from dataclasses import replace

from emostream.models.speaker_norm import SpeakerNorm, SpeakerPrior
from emostream.stream.messages import Acoustic
from emostream.stream.stages.stage import Stage, elapsed_ms


class SpeakerNormalisation(Stage[Acoustic, Acoustic]):
    name = "speaker_norm"
    accepts = (Acoustic,)

    def __init__(self, prior: SpeakerPrior) -> None:
        self.norm = SpeakerNorm(prior)

    async def process(self, item: Acoustic) -> list[Acoustic]:
        if not len(item.frames):
            return [item]
        t0 = time.monotonic()
        frames = self.norm(item.utterance.speaker, item.frames)
        latency = item.latency_ms | {"speaker_norm": elapsed_ms(t0, time.monotonic())}
        return [replace(item, frames=frames, latency_ms=latency)]
