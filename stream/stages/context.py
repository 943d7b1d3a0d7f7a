"""Stage: the conversation-context buffer, the last H utterances of the dialogue, past only."""

from __future__ import annotations

import time
from collections import deque

import torch

from emostream.models.blocks import masked_mean, masked_std
from emostream.models.collate import PastUtterance
from emostream.stream.messages import Embedded, InContext
from emostream.stream.stages.stage import Stage, elapsed_ms


class ContextBuffer(Stage[Embedded, InContext]):
    """Attaches the H previous utterances to each one, then remembers it for the next.

    Only what a model needs is kept (sentence vector, acoustic summary, speaker), so memory is fixed
    by H whatever the length of the call.
    """

    name = "context"
    accepts = (Embedded,)

    def __init__(self, size: int, text_dim: int) -> None:
        self.past: deque[PastUtterance] = deque(maxlen=size)
        self.text_dim = text_dim

    async def process(self, item: Embedded) -> list[InContext]:
        t0 = time.monotonic()
        context = tuple(self.past)
        frames = item.transcribed.acoustic.frames.unsqueeze(0)
        valid = torch.ones(frames.shape[:2], dtype=torch.bool)
        stats = torch.cat([masked_mean(frames, valid), masked_std(frames, valid)], dim=-1)[0]
        sentence = item.sentence if item.sentence is not None else torch.zeros(self.text_dim)
        if self.past.maxlen:
            speaker = item.transcribed.acoustic.utterance.speaker
            self.past.append(PastUtterance(sentence=sentence, audio_stats=stats, speaker=speaker))
        return [InContext(item, context, item.latency_ms | {"context": elapsed_ms(t0, time.monotonic())})]
