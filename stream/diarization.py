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
from emostream.stream.speakers import SpeakerConfig, SpeakerEncoder, SpeakerTracker
from emostream.stream.stage import Stage, elapsed_ms
from emostream.stream.vad import SAMPLE_RATE


class SpeakerLabelling(Stage[Utterance | EndCandidate, Utterance | EndCandidate]):
    name = "speaker"
    accepts = (Utterance, EndCandidate)

    def __init__(self, cfg: SpeakerConfig, encoder: SpeakerEncoder) -> None:
        self.encoder = encoder
        self.tracker = SpeakerTracker(cfg, encoder)
        self._speculation: tuple[str, float, asyncio.Task[np.ndarray]] | None = None

    async def process(self, item: Utterance | EndCandidate) -> list[Utterance | EndCandidate]:
        if isinstance(item, EndCandidate):
            if self._speculation is not None:
                self._speculation[2].cancel()
            task = asyncio.create_task(asyncio.to_thread(self.encoder.embed, item.audio))
            self._speculation = (item.utterance_id, item.end_s, task)
            return [item]
        t0 = time.monotonic()
        spec, self._speculation = self._speculation, None
        if spec is not None and spec[0] == item.utterance_id and abs(spec[1] - item.end_s) < 1e-6:
            embedding = await spec[2]
        else:
            if spec is not None:
                spec[2].cancel()
            embedding = await asyncio.to_thread(self.encoder.embed, item.audio)
        assignment = self.tracker.assign_embedding(embedding, len(item.audio) / SAMPLE_RATE)
        latency = item.latency_ms | {"speaker": elapsed_ms(t0, time.monotonic())}
        return [replace(item, speaker=assignment.speaker, latency_ms=latency)]

    async def flush(self) -> list[Utterance | EndCandidate]:
        if self._speculation is not None:
            self._speculation[2].cancel()
        return []
