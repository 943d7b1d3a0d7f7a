"""An ingress replica's reports to the watcher (``watcher.py``): one sender per replica ships, one request at a
time, every event its calls published since the last report and its live calls' summaries (``board.Report``).

A call never waits for it: publishing an event appends it to a list. One request at a time keeps the events in
order and batches them by itself when the watcher is slow; a slow or absent watcher costs events for the dashboard
(beyond ``MAX_PENDING`` they are dropped and counted), never a call. While calls are live a report goes at least
every ``REPORT_S``, so that the summaries' ``audio_s`` moves on through silences too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from ray.serve.handle import DeploymentHandle

from emostream.stream.cluster.board import Report
from emostream.stream.events import Event, SummaryEvent

log = logging.getLogger("emo-stream.cluster")
REPORT_S = 1.0
MAX_PENDING = 5000
CLOSE_TIMEOUT_S = 2.0


class Reporter:
    """A publisher of every call of the replica (``Calls`` gives it their events) and the sender of its reports."""

    def __init__(self, watcher: DeploymentHandle, replica: str, live: Callable[[], dict[str, SummaryEvent]]) -> None:
        self.name = "watcher"
        self.watcher, self.replica, self.live = watcher, replica, live
        self.pending: list[Event] = []
        self.dropped = 0
        self.failing = False
        self.changed = asyncio.Event()
        self.sending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.sending = asyncio.create_task(self._send_all(), name="reports to the watcher")

    async def publish(self, event: Event) -> None:
        if len(self.pending) < MAX_PENDING:
            self.pending.append(event)
        else:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % MAX_PENDING == 0:
                log.warning("the watcher is not keeping up: %d events for the dashboard dropped", self.dropped)
        self.changed.set()

    def wake(self) -> None:
        """A call started or ended: report it now."""
        self.changed.set()

    async def close(self) -> None:
        """Stops the sender; sends what is pending if the watcher takes it within ``CLOSE_TIMEOUT_S``."""
        if self.sending is not None:
            self.sending.cancel()
            await asyncio.gather(self.sending, return_exceptions=True)
        with suppress(TimeoutError):
            await asyncio.wait_for(self._send(), CLOSE_TIMEOUT_S)

    async def _send_all(self) -> None:
        live = False
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), REPORT_S if live else None)
            self.changed.clear()
            live = await self._send()

    async def _send(self) -> bool:
        """One report of what happened since the last; whether calls are live."""
        report = Report(self.replica, tuple(self.pending), self.live())
        self.pending = []
        try:
            await self.watcher.report.remote(report)
        except Exception as e:  # whatever the reason, the calls go on: only the cluster-wide view misses it
            if not self.failing:
                log.warning("report to the watcher failed (%s: %s): the dashboard and /v1/streams miss this "
                            "replica's calls until it answers", type(e).__name__, e)
            self.failing = True
        else:
            if self.failing:
                log.warning("reports to the watcher go through again")
            self.failing = False
        return bool(report.live)
