"""Wiring: a source → the per-stream stages, in the order stream/stages/__init__.py gives → the publishers.

Heavy models are loaded once (:class:`~emostream.stream.services.runtime.Runtime`) and shared by every stream
through services that queue and batch work; each stream has its own stages and bounded queues, so one stream's
state never leaks into another's and one stream's failure ends that stream alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from emostream.stream.config import Config
from emostream.stream.errors import UserError
from emostream.stream.events import EmotionEvent, EstimateEvent, Event, UtteranceEvent
from emostream.stream.messages import AudioFrame, EndOfStream, Outgoing
from emostream.stream.observe.metrics import StreamMetrics
from emostream.stream.publishers import Publisher
from emostream.stream.services.interface import SharedEncoder
from emostream.stream.services.runtime import Runtime
from emostream.stream.stages.acoustic import AcousticFeatures
from emostream.stream.stages.confirmation import SileroConfirmation
from emostream.stream.stages.context import ContextBuffer
from emostream.stream.stages.diarization import SpeakerLabelling
from emostream.stream.stages.embedding import TextEmbedding
from emostream.stream.stages.encodes import SharedEncodes
from emostream.stream.stages.functionals import UtteranceFunctionals
from emostream.stream.stages.inference import EarlyEstimate, Inference
from emostream.stream.stages.segmentation import Segmentation
from emostream.stream.stages.speaker_normalisation import SpeakerNormalisation
from emostream.stream.stages.stage import Stage, elapsed_ms, run_stage
from emostream.stream.stages.transcription import Transcription
from emostream.stream.stages.vad import SAMPLE_RATE

log = logging.getLogger(__name__)
Source = Callable[[asyncio.Event], AsyncIterator[AudioFrame | EndOfStream]]


@dataclass(frozen=True)
class StreamSpec:
    stream_id: str
    source: Source
    description: str  # for messages: a file name or a device
    channels: int = 1
    require_speech: bool = True  # a replayed file without speech is an error; a quiet microphone is not
    # Frames come at the speed of speech (a microphone, a --realtime replay). Only live streams get partial
    # transcripts: in a fast replay they are stale before anyone sees them and cost ~15 % of its throughput.
    live: bool = True
    input_overruns: Callable[[], int] = lambda: 0
    # Speaker name per channel for this stream alone (a network call names its own); None: source.channel_names.
    channel_names: tuple[str, ...] | None = None


class StreamPipeline:
    def __init__(self, spec: StreamSpec, cfg: Config, runtime: Runtime, publishers: list[Publisher]) -> None:
        meta = runtime.bundle.meta
        self.spec, self.cfg, self.publishers = spec, cfg, publishers
        # One encoder pass per utterance for the features and the final decode, when they can share it.
        shared = SharedEncodes(runtime.features) if isinstance(runtime.features, SharedEncoder) else None
        self.transcription = Transcription(runtime.asr, cfg.asr, shared)
        names = cfg.source.channel_names if spec.channel_names is None else spec.channel_names
        self.stages: list[Stage] = [
            Segmentation(spec.stream_id, cfg.vad, names,
                         cfg.asr.partial_interval_ms if spec.live else 0,
                         cfg.asr.speculate_after_ms),
            AcousticFeatures(shared or runtime.features),
            *([UtteranceFunctionals(runtime.functionals)] if runtime.functionals else []),
            *([SpeakerNormalisation(meta.speaker_norm)] if meta.speaker_norm else []),
            EarlyEstimate(runtime.inference, meta.id),
            self.transcription,
            TextEmbedding(runtime.encoder),
            ContextBuffer(meta.dims.context_size, meta.dims.text_dim),
            Inference(runtime.inference, meta.id, meta.labels),
        ]
        if runtime.speaker_encoder is not None and spec.channels == 1 and not names:
            self.stages.insert(1, SpeakerLabelling(cfg.speakers, runtime.speaker_encoder))
        if cfg.vad.confirm_with_silero:
            self.stages.insert(1, SileroConfirmation(cfg.vad))
        self.queues: list[asyncio.Queue] = [asyncio.Queue(cfg.source.queue_size) for _ in range(len(self.stages) + 1)]
        self.metrics = StreamMetrics(spec.stream_id, runtime.prometheus)

    def queue_depths(self) -> dict[str, int]:
        return {stage.name: q.qsize() for stage, q in zip(self.stages, self.queues, strict=False)}

    def metrics_event(self) -> Event:
        return self.metrics.snapshot(self.cfg.metrics.interval_s, self.queue_depths(),
                                     self.transcription.dropped_partials, self.spec.input_overruns())

    async def run(self, stop: asyncio.Event) -> StreamMetrics:
        """Runs the stream to its end (or ``stop``); returns when its last event is published."""
        end: list[EndOfStream] = []
        frame_s = self.cfg.vad.frame_samples / SAMPLE_RATE

        async def feed() -> None:
            async for msg in self.spec.source(stop):
                if isinstance(msg, AudioFrame) and msg.channel == 0:
                    self.metrics.audio_s += frame_s
                await self.queues[0].put(msg)

        async def sink() -> None:
            while not isinstance(item := await self.queues[-1].get(), EndOfStream):
                event = stamp(item)
                self.metrics.observe(event)  # before publishing: whoever sees the event sees it counted
                await publish_now(event, self.publishers)
            end.append(item)

        async def report() -> None:
            while self.cfg.metrics.interval_s:
                await asyncio.sleep(self.cfg.metrics.interval_s)
                await publish_now(self.metrics_event(), self.publishers)

        reporter = asyncio.create_task(report())
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(feed())
                for stage, inbox, outbox in zip(self.stages, self.queues[:-1], self.queues[1:], strict=True):
                    group.create_task(run_stage(stage, inbox, outbox))
                group.create_task(sink())
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        finally:
            reporter.cancel()
        if self.cfg.metrics.interval_s:
            await publish_now(self.metrics_event(), self.publishers)  # the final figures of the stream
        if end[0].error:
            raise UserError(end[0].error)
        if self.spec.require_speech and not self.metrics.counts.get("emotion") and not stop.is_set():
            peak = end[0].peak
            level = f"{20 * math.log10(peak):.0f} dBFS" if peak > 0 else "digital silence"
            raise UserError(
                f"{self.spec.description}: no speech found in {self.metrics.audio_s:.1f} s of audio (peak level "
                f"{level}); check that it holds speech, or lower vad.aggressiveness in the config"
            )
        return self.metrics


async def run_streams(specs: list[StreamSpec], cfg: Config, runtime: Runtime, publishers: list[Publisher],
                      stop: asyncio.Event) -> dict[str, StreamMetrics | BaseException]:
    """Runs every stream concurrently; a stream that fails is reported and the others go on."""
    check_streams(specs, cfg)
    ids = [s.stream_id for s in specs]
    pipelines = [StreamPipeline(s, cfg, runtime, publishers) for s in specs]

    async def one(p: StreamPipeline) -> StreamMetrics:
        try:
            return await p.run(stop)
        except UserError as e:
            log.error("stream %s failed: %s", p.spec.stream_id, e)
            raise

    results = await asyncio.gather(*(one(p) for p in pipelines), return_exceptions=True)
    return dict(zip(ids, results, strict=True))


def check_streams(specs: list[StreamSpec], cfg: Config) -> None:
    """Refuses more streams than ``source.max_streams`` (overload is refused, not absorbed) and duplicate ids."""
    if len(specs) > cfg.source.max_streams:
        raise UserError(f"{len(specs)} streams requested but source.max_streams is {cfg.source.max_streams}; "
                        "raise it in the config or run fewer streams per process")
    ids = [s.stream_id for s in specs]
    if len(set(ids)) != len(ids):
        raise UserError(f"stream ids must be unique, got {ids}; name them with --stream-id")


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first leaf exception of a task group, so that a user error stays a one-line error."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def stamp(item: Outgoing) -> Event:
    """The event with its end-to-end latency: from the end of the audio it is about to now.

    For emotion events ``queue`` is the part of the end-to-end time spent in no stage: waiting in queues.
    """
    event = item.event
    if isinstance(event, UtteranceEvent):
        lat = dict(event.latency_ms)
        e2e = elapsed_ms(item.audio_end_wall, time.monotonic())
        if isinstance(event, EmotionEvent | EstimateEvent):
            lat["queue"] = round(max(0.0, e2e - sum(lat.values())), 3)
        lat["end_to_end"] = e2e
        event = replace(event, latency_ms=lat)
    return event


async def publish_now(event: Event, publishers: list[Publisher]) -> Event:
    event = replace(event, emitted_at=round(time.time(), 3))
    results = await asyncio.gather(*(p.publish(event) for p in publishers), return_exceptions=True)
    for p, r in zip(publishers, results, strict=True):
        if isinstance(r, BaseException):
            raise r if isinstance(r, UserError) else UserError(f"publisher {p.name} failed: {r}")
    return event


