"""Stage: the bundle's utterance functionals (openSMILE eGeMAPS), appended to every acoustic frame.

They are computed while the utterance is spoken: each piece of audio that goes by before the endpoint (the audio
so far for a partial transcript, the guesses at the end of speech) is fed to the utterance's live extraction, and the
exact cut ends it. What is left after the endpoint is then the statistics over the frames, not a pass over all of
the audio (about 11 ms per second of speech, more than the Whisper encode of a short turn, and on a busy or slowed
machine the longest wait before the first estimate). An utterance cut otherwise, or never fed, is extracted whole.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch

from emostream.models.functionals import Functionals, LiveFunctionals, appended
from emostream.stream.messages import Acoustic, EndCandidate, PartialAudio
from emostream.stream.stages.stage import Stage, elapsed_ms

Passing = PartialAudio | EndCandidate | Acoustic


class UtteranceFunctionals(Stage[Passing, Passing]):
    name = "functionals"
    accepts = (PartialAudio, EndCandidate, Acoustic)

    def __init__(self, functionals: Functionals) -> None:
        self.functionals = functionals  # shared by every stream; each utterance gets a live extraction of its own
        self._live: dict[str, LiveFunctionals] = {}  # utterance id → its extraction, while it is spoken
        self.restarted = 0  # extractions begun again: speech resumed after an exact cut, or a cut changed
        self.after_endpoint = 0  # utterances extracted whole after their endpoint (never fed, or cut otherwise)

    def _feed(self, utterance_id: str, audio: np.ndarray) -> LiveFunctionals:
        live = self._live.get(utterance_id)
        if live is None or not live.feed(audio):
            if live is not None:
                live.abort()
                self.restarted += 1
            live = self._live[utterance_id] = self.functionals.live()
            live.feed(audio)
        return live

    async def process(self, item: Passing) -> list[Passing]:
        if isinstance(item, PartialAudio | EndCandidate):
            live = self._feed(item.utterance_id, item.audio)
            if isinstance(item, EndCandidate) and item.exact:
                live.finish(item.audio)
            return [item]
        utt = item.utterance
        t0 = time.monotonic()
        live = self._live.pop(utt.utterance_id, None)
        done = live.finish(utt.audio) if live is not None else None
        if done is None:
            if live is not None:
                live.abort()
            self.after_endpoint += 1
            values = await asyncio.to_thread(self.functionals.values, utt.audio)
        else:
            values = await asyncio.wrap_future(done)
        latency = item.latency_ms | {"functionals": elapsed_ms(t0, time.monotonic())}
        return [Acoustic(utt, appended(item.frames, torch.from_numpy(values)), latency)]

    def close(self) -> None:
        for live in self._live.values():  # their threads would otherwise wait for audio for good
            live.abort()
        self._live.clear()
