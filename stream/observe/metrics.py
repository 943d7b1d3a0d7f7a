"""Runtime metrics per stream: stage latency percentiles, real-time factor, queue depths, drops.

The same figures go three ways: periodic ``metrics`` events on the bus, a Prometheus endpoint
(``metrics.prometheus_port``), and a summary on stderr at exit.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from emostream.stream.events import EmotionEvent, Event, MetricsEvent

WINDOW = 512  # recent utterances the percentiles are taken over: memory stays fixed on a day-long call


def percentiles(values: deque[float] | list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1)}


class StreamMetrics:
    def __init__(self, stream_id: str, prometheus: PrometheusExporter | None = None) -> None:
        self.stream_id = stream_id
        self.started = time.monotonic()
        self.latency: dict[str, deque[float]] = {}
        self.counts: dict[str, int] = {}
        self.audio_s = 0.0
        self.prometheus = prometheus

    def observe(self, event: Event) -> None:
        """Called for every published event."""
        self.counts[event.type] = self.counts.get(event.type, 0) + 1
        if self.prometheus:
            self.prometheus.events.labels(self.stream_id, event.type).inc()
        if isinstance(event, EmotionEvent):
            for stage, ms in event.latency_ms.items():
                self.latency.setdefault(stage, deque(maxlen=WINDOW)).append(ms)
                if self.prometheus:
                    self.prometheus.latency.labels(self.stream_id, stage).observe(ms / 1000)

    def snapshot(self, window_s: float, queue_depths: dict[str, int], dropped_partials: int,
                 input_overruns: int) -> MetricsEvent:
        wall = time.monotonic() - self.started
        rtf = wall / self.audio_s if self.audio_s else 0.0
        if self.prometheus:
            p = self.prometheus
            p.rtf.labels(self.stream_id).set(rtf)
            p.dropped.labels(self.stream_id).set(dropped_partials)
            p.overruns.labels(self.stream_id).set(input_overruns)
            for stage, depth in queue_depths.items():
                p.queue.labels(self.stream_id, stage).set(depth)
        return MetricsEvent(
            stream_id=self.stream_id, window_s=window_s, audio_s=round(self.audio_s, 2), wall_s=round(wall, 2),
            real_time_factor=round(rtf, 3), utterances=self.counts.get("emotion", 0),
            latency_ms={stage: percentiles(v) for stage, v in self.latency.items()},
            queue_depths=queue_depths, dropped_partials=dropped_partials, input_overruns=input_overruns,
        )

    def summary(self) -> str:
        wall = time.monotonic() - self.started
        speed = self.audio_s / wall if wall else 0.0
        line = (f"{self.stream_id}: {self.counts.get('emotion', 0)} utterances, {self.counts.get('partial', 0)} "
                f"partials in {self.audio_s:.1f} s of audio, {wall:.1f} s wall ({speed:.1f}x real time)")
        if e2e := self.latency.get("end_to_end"):
            p = percentiles(e2e)
            line += f"; end-to-end latency p50 {p['p50']:.0f} ms, p95 {p['p95']:.0f} ms, p99 {p['p99']:.0f} ms"
        return line


class PrometheusExporter:
    """Serves the metrics over HTTP for scraping; its own registry, so several runtimes never collide."""

    def __init__(self, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        buckets = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
        self.latency = Histogram("emostream_stage_latency_seconds", "Per-stage latency of final events",
                                 ["stream", "stage"], buckets=buckets, registry=self.registry)
        self.events = Counter("emostream_events", "Events published", ["stream", "type"], registry=self.registry)
        self.alerts = Counter("emostream_alerts", "Supervisor alerts raised (emo-stream serve)",
                              ["stream", "rule", "severity"], registry=self.registry)
        self.rtf = Gauge("emostream_real_time_factor", "Wall time per second of audio", ["stream"],
                         registry=self.registry)
        self.queue = Gauge("emostream_queue_depth", "Messages waiting before a stage", ["stream", "stage"],
                           registry=self.registry)
        self.dropped = Gauge("emostream_dropped_partials", "Partial transcripts skipped under load", ["stream"],
                             registry=self.registry)
        self.overruns = Gauge("emostream_input_overruns", "Audio input overruns", ["stream"], registry=self.registry)
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        self.server.shutdown()
