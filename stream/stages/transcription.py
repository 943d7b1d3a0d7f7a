"""The per-stream ASR stage: final transcripts in order, partial ones in the background, over the shared
:class:`~emostream.stream.services.asr.AsrService`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import replace

from emostream.stream.config import AsrConfig
from emostream.stream.events import PartialEvent
from emostream.stream.messages import (
    Acoustic,
    EndCandidate,
    Ending,
    Outgoing,
    PartialAudio,
    Speculated,
    Transcribed,
    Transcript,
)
from emostream.stream.services.asr import FINAL, PARTIAL
from emostream.stream.services.interface import Asr
from emostream.stream.stages.agreement import LocalAgreement, words
from emostream.stream.stages.encodes import SharedEncodes
from emostream.stream.stages.stage import Speculation, Stage, elapsed_ms
from emostream.stream.stages.vad import SAMPLE_RATE


class Transcription(Stage[Acoustic | PartialAudio | EndCandidate, Transcribed]):
    """Finals are decoded in order. Partials go through a one-slot mailbox served in the background:
    a newer partial of the stream replaces one still waiting (counted in ``dropped_partials``), and a
    partial of an utterance that has already ended is dropped.

    Speculation: an ``EndCandidate`` (speech paused) starts the final decode at once, at final priority.
    When the endpoint comes and the voiced end is the same, that transcript is used and the decode was
    hidden behind the hangover; if speech resumed, the candidate is dropped (``speculation.wasted``).
    A finished speculative transcript goes downstream as ``Speculated`` (ahead of its final), so the text
    embedding can be hidden behind the hangover too.

    With ``encodes`` (the bundle's features are this ASR's encoder states), finals are decoded from the
    utterance's one encoder pass, which the features stage shares: the decode then starts on the exact cut
    (at the post-roll), not on the earlier guess, whose audio would need an encoder pass of its own.
    """

    name = "asr"
    accepts = (Acoustic, PartialAudio, EndCandidate)

    def __init__(self, service: Asr, cfg: AsrConfig, encodes: SharedEncodes | None = None) -> None:
        self.service = service
        self.encodes = encodes
        self.window = int(cfg.partial_window_s * SAMPLE_RATE)
        self.dropped_partials = 0
        self._mailbox: PartialAudio | None = None
        self._wake = asyncio.Event()
        self._agreements: dict[str, LocalAgreement] = {}
        self._revisions: dict[str, int] = {}
        self._ended: deque[str] = deque(maxlen=256)  # recent finals: bounded however long the call
        self._outbox: asyncio.Queue | None = None
        self._worker: asyncio.Task[None] | None = None
        self.speculation: Speculation[Transcript] = Speculation()

    def attach(self, outbox: asyncio.Queue) -> None:
        self._outbox = outbox

    async def process(self, item: Acoustic | PartialAudio | EndCandidate) -> list[Transcribed]:
        if isinstance(item, EndCandidate):
            if self.encodes is None:
                self.speculation.start(item.pause, self._speculate(item))
            elif item.exact:
                self.speculation.start(item.key, self._speculate(item))
            return []
        if isinstance(item, PartialAudio):
            if self._mailbox is not None:
                self.dropped_partials += 1
            self._mailbox = item
            self._wake.set()
            if self._worker is None:
                self._worker = asyncio.create_task(self._partials(), name="asr-partials")
            return []
        utt = item.utterance
        self._ended.append(utt.utterance_id)
        self._agreements.pop(utt.utterance_id, None)
        self._revisions.pop(utt.utterance_id, None)
        if self._mailbox is not None and self._mailbox.utterance_id == utt.utterance_id:
            self._mailbox = None
            self.dropped_partials += 1
        t0 = time.monotonic()
        prepared = self.speculation.take(utt.pause if self.encodes is None else utt.key)
        if prepared is not None:
            # Reported as speculated only when decoded from the early guess (audio short of the post-roll).
            transcript = replace(await prepared, speculated=self.encodes is None)
        else:
            transcript = await self._final(utt)
        return [Transcribed(item, transcript, item.latency_ms | {"asr": elapsed_ms(t0, time.monotonic())})]

    async def _final(self, cut: Ending) -> Transcript:
        if self.encodes is None:
            return await self.service.transcribe(cut.audio, FINAL)
        return await self.encodes.transcript(cut.key, cut.audio)

    async def _speculate(self, item: EndCandidate) -> Transcript:
        transcript = await self._final(item)
        if transcript.text and self._outbox is not None:
            await self._outbox.put(Speculated(item.utterance_id, transcript.text))
        return transcript

    async def _partials(self) -> None:
        assert self._outbox is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            job, self._mailbox = self._mailbox, None
            if job is None or job.utterance_id in self._ended:
                continue
            t0 = time.monotonic()
            transcript = await self.service.transcribe(job.audio[-self.window :], PARTIAL)
            if job.utterance_id in self._ended:  # the final overtook it: too late to be useful
                self.dropped_partials += 1
                continue
            agreement = self._agreements.setdefault(job.utterance_id, LocalAgreement())
            committed, tentative = agreement.update(words(transcript.text))
            revision = self._revisions[job.utterance_id] = self._revisions.get(job.utterance_id, 0) + 1
            now = time.monotonic()
            event = PartialEvent(
                stream_id=job.stream_id, utterance_id=job.utterance_id, seq=job.seq, channel=job.channel,
                speaker=job.speaker, start_s=round(job.start_s, 3), end_s=round(job.end_s, 3),
                latency_ms={"asr": elapsed_ms(t0, now)}, revision=revision,
                committed=" ".join(committed), tentative=" ".join(tentative),
            )
            await self._outbox.put(Outgoing(event, job.wall))

    async def flush(self) -> list[Transcribed]:
        self.speculation.drop()
        return []

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
