"""Stage: transcript → text embedding with the bundle's packaged encoder (MiniLM by default).

A ``Speculated`` transcript (decoded during the hangover) is embedded at once; when the final transcript
of that utterance has the same text, that embedding is used and only its remainder counts as latency.
"""

from __future__ import annotations

import time

import torch

from emostream.stream.messages import Embedded, Speculated, Transcribed
from emostream.stream.services.interface import SentenceEncoder
from emostream.stream.stages.stage import Speculation, Stage, elapsed_ms

Encoded = tuple[torch.Tensor, torch.Tensor | None]  # (sentence, tokens or None)


class TextEmbedding(Stage[Transcribed | Speculated, Embedded]):
    name = "text"
    accepts = (Transcribed, Speculated)

    def __init__(self, encoder: SentenceEncoder) -> None:
        self.encoder = encoder
        self.speculation: Speculation[Encoded] = Speculation()

    async def process(self, item: Transcribed | Speculated) -> list[Embedded]:
        if isinstance(item, Speculated):
            self.speculation.start((item.utterance_id, item.text), self._encode(item.text))
            return []
        t0 = time.monotonic()
        text = item.transcript.text
        prepared = self.speculation.take((item.acoustic.utterance.utterance_id, text))
        sentence = tokens = None
        if text:
            sentence, tokens = await (prepared or self._encode(text))
        latency = item.latency_ms | {"text_embedding": elapsed_ms(t0, time.monotonic())}
        return [Embedded(item, sentence, tokens, latency)]

    async def _encode(self, text: str) -> Encoded:
        enc = await self.encoder.encode([text])
        tokens = enc.tokens[0, : int(enc.mask[0].sum())] if self.encoder.spec.level == "token" else None
        return enc.sentence[0], tokens

    async def flush(self) -> list[Embedded]:
        self.speculation.drop()
        return []
