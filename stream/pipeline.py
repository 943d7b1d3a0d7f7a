"""Wiring: source → VAD → features → ASR → text embedding → context → inference → publishers.

Heavy models are loaded once (:class:`Runtime`) and shared; each stream gets its own stages and
queues, so a stream's state never leaks into another's.
"""

from __future__ import annotations

import asyncio
import math
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from emostream.models.bundle import DEFAULT_BUNDLE, Bundle, load_bundle
from emostream.models.text_encoder import TextEncoder
from emostream.stream.acoustic import AcousticFeatures
from emostream.stream.audio import AudioInfo
from emostream.stream.config import Config
from emostream.stream.context import ContextBuffer
from emostream.stream.device import resolve_device
from emostream.stream.embedding import TextEmbedding
from emostream.stream.errors import UserError
from emostream.stream.events import EmotionEvent
from emostream.stream.inference import EmotionClassifier, Inference
from emostream.stream.messages import EndOfStream, Scored
from emostream.stream.publishers import Publisher
from emostream.stream.segmentation import Segmentation
from emostream.stream.source import replay
from emostream.stream.stage import Stage, elapsed_ms, run_stage
from emostream.stream.transcription import Transcriber, Transcription


@dataclass
class Runtime:
    """The models every stream shares."""

    bundle: Bundle
    transcriber: Transcriber
    encoder: TextEncoder
    classifier: EmotionClassifier


def load_runtime(cfg: Config) -> Runtime:
    device = resolve_device(cfg.model.device)
    bundle_path = DEFAULT_BUNDLE if cfg.model.bundle == "default" else Path(cfg.model.bundle)
    bundle = load_bundle(bundle_path, device)
    return Runtime(
        bundle=bundle,
        transcriber=Transcriber(cfg.asr, device),
        encoder=TextEncoder(bundle.meta.text_encoder, device),
        classifier=EmotionClassifier(bundle, device),
    )


@dataclass
class StreamReport:
    stream_id: str
    audio_s: float = 0.0
    wall_s: float = 0.0
    events: list[EmotionEvent] = field(default_factory=list)

    def summary(self) -> str:
        e2e = sorted(e.latency_ms["end_to_end"] for e in self.events)
        lat = ""
        if e2e:
            p95 = e2e[min(len(e2e) - 1, round(0.95 * (len(e2e) - 1)))]
            lat = f", end-to-end latency p50 {statistics.median(e2e):.0f} ms, p95 {p95:.0f} ms"
        speed = self.audio_s / self.wall_s if self.wall_s else 0.0
        return (f"{self.stream_id}: {len(self.events)} utterances in {self.audio_s:.1f} s of audio, "
                f"{self.wall_s:.1f} s wall ({speed:.1f}x real time){lat}")


def stream_id_for(path: Path) -> str:
    """A topic-safe id from the file name (MQTT forbids + and # in topics; / would add levels)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem) or "stream"


async def run_replay(
    info: AudioInfo, stream_id: str, cfg: Config, runtime: Runtime, publishers: list[Publisher]
) -> StreamReport:
    """Replays one file through every stage; returns when the last event has been published."""
    meta = runtime.bundle.meta
    stages: list[Stage] = [
        Segmentation(stream_id, cfg.vad, cfg.source.channel_names),
        AcousticFeatures(meta.features, runtime.classifier.device),
        Transcription(runtime.transcriber),
        TextEmbedding(runtime.encoder),
        ContextBuffer(meta.dims.context_size, meta.dims.text_dim),
        Inference(runtime.classifier),
    ]
    queues: list[asyncio.Queue] = [asyncio.Queue(cfg.source.queue_size) for _ in range(len(stages) + 1)]
    report = StreamReport(stream_id)
    t0 = time.monotonic()
    end: list[EndOfStream] = []

    async def feed() -> None:
        async for msg in replay(info, stream_id, cfg.vad.frame_samples, cfg.source.realtime):
            await queues[0].put(msg)

    async def sink() -> None:
        while True:
            item = await queues[-1].get()
            if isinstance(item, EndOfStream):
                end.append(item)
                return
            report.events.append(await publish(item, publishers))

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(feed())
            for stage, inbox, outbox in zip(stages, queues[:-1], queues[1:], strict=True):
                group.create_task(run_stage(stage, inbox, outbox))
            group.create_task(sink())
    except BaseExceptionGroup as group_error:
        raise first_error(group_error) from None
    report.wall_s = time.monotonic() - t0
    report.audio_s = end[0].frames * cfg.vad.frame_samples / 16000
    if end[0].error:
        raise UserError(end[0].error)
    if not report.events:
        level = f"{20 * math.log10(end[0].peak):.0f} dBFS" if end[0].peak > 0 else "digital silence"
        raise UserError(
            f"{info.path}: no speech found in {report.audio_s:.1f} s of audio (peak level {level}); check that "
            "the file holds speech, or lower vad.aggressiveness in the config"
        )
    return report


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first leaf exception of a task group, so that a user error stays a one-line error."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def publish(item: Scored, publishers: list[Publisher]) -> EmotionEvent:
    """Stamps the end-to-end latency (utterance end in the audio → now) and hands the event to every publisher.

    ``queue`` is the part of the end-to-end time not spent in any stage: waiting in queues.
    """
    now = time.monotonic()
    lat = dict(item.event.latency_ms)
    e2e = elapsed_ms(item.audio_end_wall, now)
    lat["queue"] = round(max(0.0, e2e - sum(lat.values())), 3)
    lat["end_to_end"] = e2e
    event = replace(item.event, emitted_at=round(time.time(), 3), latency_ms=lat)
    await asyncio.gather(*(p.publish(event) for p in publishers))
    return event
