"""Stage: transcript → text embedding with the bundle's packaged encoder (MiniLM by default)."""

from __future__ import annotations

import asyncio
import time

from emostream.models.text_encoder import TextEncoder
from emostream.stream.messages import Embedded, Transcribed
from emostream.stream.stage import Stage, elapsed_ms


class TextEmbedding(Stage[Transcribed, Embedded]):
    name = "text"
    accepts = (Transcribed,)

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder

    async def process(self, item: Transcribed) -> list[Embedded]:
        t0 = time.monotonic()
        text = item.transcript.text
        sentence = tokens = None
        if text:
            enc = await asyncio.to_thread(self.encoder.encode, [text])
            sentence = enc.sentence[0].cpu()
            if self.encoder.spec.level == "token":
                tokens = enc.tokens[0, : int(enc.mask[0].sum())].cpu()
        latency = item.latency_ms | {"text_embedding": elapsed_ms(t0, time.monotonic())}
        return [Embedded(item, sentence, tokens, latency)]
