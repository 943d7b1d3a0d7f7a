"""Stage: speaker labels for a mono stream, from the packaged GE2E voice encoder (past utterances only).

Partial events carry the channel's name; the speaker is decided at the endpoint, from the whole utterance.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from emostream.stream.messages import Utterance
from emostream.stream.speakers import SpeakerConfig, SpeakerEncoder, SpeakerTracker
from emostream.stream.stage import Stage, elapsed_ms


class SpeakerLabelling(Stage[Utterance, Utterance]):
    name = "speaker"
    accepts = (Utterance,)

    def __init__(self, cfg: SpeakerConfig, encoder: SpeakerEncoder) -> None:
        self.tracker = SpeakerTracker(cfg, encoder)

    async def process(self, item: Utterance) -> list[Utterance]:
        t0 = time.monotonic()
        assignment = await asyncio.to_thread(self.tracker.assign, item.audio)
        latency = item.latency_ms | {"speaker": elapsed_ms(t0, time.monotonic())}
        return [replace(item, speaker=assignment.speaker, latency_ms=latency)]
