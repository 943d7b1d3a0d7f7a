"""Stage: speaker labels for a mono stream, from the packaged GE2E voice encoder (past utterances only).

Partial events carry the channel's name; the speaker is decided at the endpoint, from the whole utterance.
Like ASR, the voice embedding starts speculatively when speech pauses (``EndCandidate``), so the hangover
hides it; the tracker's state only changes at the real endpoint.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import numpy as np

from emostream.stream.messages import EndCandidate, Utterance
from emostream.stream.stages.speakers import SpeakerConfig, SpeakerEncoder, SpeakerTracker
from emostream.stream.stages.stage import Speculation, Stage, elapsed_ms
from emostream.stream.stages.vad import SAMPLE_RATE


class SpeakerLabelling(Stage[Utterance | EndCandidate, Utterance | EndCandidate]):
    name = "speaker"
    accepts = (Utterance, EndCandidate)

    def __init__(self, cfg: SpeakerConfig, encoder: SpeakerEncoder) -> None:
        self.encoder = encoder
        self.tracker = SpeakerTracker(cfg, encoder)
        self.speculation: Speculation[np.ndarray] = Speculation()

    async def process(self, item: Utterance | EndCandidate) -> list[Utterance | EndCandidate]:
        if isinstance(item, EndCandidate):
            self.speculation.start(item.pause, asyncio.to_thread(self.encoder.embed, item.audio))
            return [item]
        t0 = time.monotonic()
        embedding = await (self.speculation.take(item.pause) or asyncio.to_thread(self.encoder.embed, item.audio))
        assignment = self.tracker.assign_embedding(embedding, len(item.audio) / SAMPLE_RATE)
        latency = item.latency_ms | {"speaker": elapsed_ms(t0, time.monotonic())}
        return [replace(item, speaker=assignment.speaker, latency_ms=latency)]

    async def flush(self) -> list[Utterance | EndCandidate]:
        self.speculation.drop()
        return []
