"""The live calls of one server: capacity, unique stream ids, and each call's pipeline as a task.

Every call runs through :class:`~emostream.stream.pipeline.StreamPipeline`, the same stages as ``--mic``, on the
one shared :class:`Runtime`. A slot is taken when a connection arrives (so a flood of connections that never
start is refused too) and given back when its pipeline has published its last event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from emostream.stream.config import Config
from emostream.stream.errors import UserError
from emostream.stream.events import AlertEvent, SummaryEvent
from emostream.stream.observe.alerts import AlertEngine
from emostream.stream.observe.metrics import StreamMetrics
from emostream.stream.observe.summary import CallSummary
from emostream.stream.pipeline import StreamPipeline, StreamSpec, publish_now
from emostream.stream.publishers import Publisher
from emostream.stream.server.protocol import POLICY, ProtocolError
from emostream.stream.services.runtime import Runtime

log = logging.getLogger(__name__)


class EndedCalls:
    """Final summaries of ended calls, each kept ``keep_s`` (server.summary_keep_s) for ``GET /v1/streams``."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self.finals: dict[str, tuple[SummaryEvent, float]] = {}  # stream id → final summary, monotonic expiry

    def add(self, final: SummaryEvent) -> None:
        self.finals[final.stream_id] = (final, time.monotonic() + self.keep_s)

    def get(self, stream_id: str) -> SummaryEvent | None:
        self._expire()
        return self.finals[stream_id][0] if stream_id in self.finals else None

    def ids(self) -> list[str]:
        self._expire()
        return sorted(self.finals)

    def _expire(self) -> None:
        now = time.monotonic()
        for gone in [k for k, (_, expiry) in self.finals.items() if expiry < now]:
            del self.finals[gone]


class Calls:
    def __init__(self, cfg: Config, runtime: Runtime, publishers: list[Publisher], stop: asyncio.Event) -> None:
        self.cfg, self.runtime, self.publishers, self.stop = cfg, runtime, publishers, stop
        self.slots = 0  # connections and pipelines holding a place, at most server.max_calls
        self.live: dict[str, asyncio.Task[StreamMetrics]] = {}
        self.pipelines: dict[str, tuple[StreamPipeline, CallSummary]] = {}
        self.ended = EndedCalls(cfg.server.summary_keep_s)
        self.finished = 0
        self.failed = 0

    def acquire(self) -> bool:
        """Takes a slot; False when the server is full (the caller refuses the connection with 1013)."""
        if self.slots >= self.cfg.server.max_calls:
            return False
        self.slots += 1
        return True

    def release(self) -> None:
        self.slots -= 1

    def start(self, spec: StreamSpec, extra: Sequence[Publisher] = ()) -> asyncio.Task[StreamMetrics]:
        """Starts the call's pipeline; an id already live is refused (1008), never merged into another call."""
        if spec.stream_id in self.live:
            raise ProtocolError(POLICY, f"stream id {spec.stream_id!r} is already live")
        outputs = [*self.publishers, *extra]
        summary = CallSummary(spec.stream_id)

        async def emit(alert: AlertEvent) -> None:
            await publish_now(alert, [*outputs, summary])

        alerts = AlertEngine(spec.stream_id, self.cfg.alerts.rules, emit, self.runtime.prometheus)
        pipeline = StreamPipeline(spec, self.cfg, self.runtime, [*outputs, summary, alerts])
        task = asyncio.create_task(self._run(pipeline, summary, outputs), name=f"call {spec.stream_id}")
        self.live[spec.stream_id] = task
        self.pipelines[spec.stream_id] = (pipeline, summary)
        return task

    def summary(self, stream_id: str) -> SummaryEvent | None:
        """The call's summary so far while it runs; its final one for server.summary_keep_s after it ended."""
        if stream_id in self.pipelines:
            return self.live_summary(stream_id)
        return self.ended.get(stream_id)

    def live_summary(self, stream_id: str) -> SummaryEvent:
        pipeline, summary = self.pipelines[stream_id]
        return summary.event(final=False, audio_s=pipeline.metrics.audio_s)

    async def _run(self, pipeline: StreamPipeline, summary: CallSummary, outputs: list[Publisher]) -> StreamMetrics:
        stream_id = pipeline.spec.stream_id
        try:
            metrics = await pipeline.run(self.stop)
            final = await publish_now(summary.event(final=True, audio_s=metrics.audio_s), outputs)
            assert isinstance(final, SummaryEvent)
            self.ended.add(final)
        except UserError as e:
            self.failed += 1
            log.error("call %s failed: %s", stream_id, e)
            raise
        except Exception as e:
            self.failed += 1
            log.exception("call %s failed: %r", stream_id, e)
            raise
        finally:
            del self.live[stream_id]
            del self.pipelines[stream_id]
        self.finished += 1
        log.info("call %s ended: %s", stream_id, metrics.summary())
        return metrics

    async def drain(self, close_timeout_s: float = 15.0) -> None:
        """Waits until every live call has published its last event (after ``stop``, they end by themselves),
        then until their connections have said goodbye: the server must still be reading the sockets while
        their close handshakes complete, or each would wait out aiohttp's close timeout."""
        while self.live:
            await asyncio.gather(*self.live.values(), return_exceptions=True)
        deadline = time.monotonic() + close_timeout_s
        while self.slots and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
