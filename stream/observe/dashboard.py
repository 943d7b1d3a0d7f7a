"""The live dashboard's feed: every call's events, fanned out to the browsers that watch (server-sent events).

A publisher like the others (it sees every event of every call). A browser that opens late first gets the recent
events of each call it remembers, then the live ones. Memory is bounded both ways: a few recent events per call
for a bounded number of calls, and a bounded queue per browser; a browser that reads too slowly loses events
(counted), never slows a call down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from typing import Any

from emostream.stream.events import Event

log = logging.getLogger(__name__)
SHOWN = ("partial", "emotion", "alert", "summary", "metrics")


class DashboardFeed:
    def __init__(self, keep_per_call: int = 60, keep_calls: int = 50, queue_size: int = 1000) -> None:
        self.name = "dashboard"
        self.keep_per_call, self.keep_calls, self.queue_size = keep_per_call, keep_calls, queue_size
        self.recent: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self.watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.dropped = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, event: Event) -> None:
        if event.type not in SHOWN:
            return
        data = event.to_dict()
        calls = self.recent
        if event.stream_id not in calls:
            calls[event.stream_id] = deque(maxlen=self.keep_per_call)
            while len(calls) > self.keep_calls:
                calls.popitem(last=False)
        kept = calls[event.stream_id]
        if event.type != "partial" or not kept or kept[-1]["type"] != "partial":
            kept.append(data)
        else:  # a partial replaces the partial before it: a late browser needs only the latest
            kept[-1] = data
        for queue in self.watchers:
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                self.dropped += 1

    def watch(self) -> tuple[asyncio.Queue[dict[str, Any]], list[dict[str, Any]]]:
        """A new browser: its queue, and what happened so far (oldest call first)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.queue_size)
        self.watchers.add(queue)
        return queue, [e for kept in self.recent.values() for e in kept]

    def unwatch(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.watchers.discard(queue)
