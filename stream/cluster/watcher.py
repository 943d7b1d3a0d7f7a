"""The cluster's view of its calls, on one replica on the head: which ingress replica holds each live call, what
``GET /v1/streams`` and the dashboard show of every call (``board.py``), and calls lost with their replica.

Ingress replicas report their calls here (``report.py``): the events they publish and their live calls' summaries.
The view application (``view.py``) answers ``/v1/streams`` and streams ``/v1/events`` from this one record, so
every node's proxy serves every call of the cluster.

A call's state lives in the replica that took it, so when that replica dies (its node lost, its process killed) Ray
Serve starts a new replica but the call cannot go on there: its client sees the socket close, and the watcher says
so on the bus, a ``call_error`` event per lost call, and in the log. Every ``WATCH_S`` it looks up the replicas that
hold live calls by their actor names; a replica Ray no longer knows is dead. The watcher runs on the head node,
whose loss ends the whole cluster anyway (docs/cluster.md: head restart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import ray
from ray import serve

from emostream.stream.cluster.board import CallBoard, Report
from emostream.stream.config import Config
from emostream.stream.events import CallErrorEvent
from emostream.stream.flags import publishers_for
from emostream.stream.pipeline import publish_now
from emostream.stream.publishers import Publisher
from emostream.stream.server.app import listing, summary_body
from emostream.stream.server.dashboard import event_stream

log = logging.getLogger("emo-stream.cluster")
WATCH_S = 2.0
HEAD = {"node:__internal_head__": 0.001}  # Ray's own resource of the head node


def alive(replica: str) -> bool:
    try:
        ray.get_actor(replica, namespace="serve")
    except ValueError:  # no live actor of that name: it died
        return False
    return True


# Requests: every ingress replica's reports, and one open /v1/events stream per dashboard watching.
@serve.deployment(num_replicas=1, max_ongoing_requests=10000, ray_actor_options={"num_cpus": 0, "resources": HEAD},
                  logging_config={"log_level": "WARNING", "enable_access_log": False})
class CallWatcher:
    def __init__(self, cfg: Config) -> None:
        self.publishers: list[Publisher] = publishers_for(cfg)
        self.board = CallBoard(cfg.server.summary_keep_s)
        self.stop = asyncio.Event()  # never set: Ray Serve ends the replica, and its event streams with it
        self.watching: asyncio.Task[None] | None = None

    async def report(self, report: Report) -> None:
        if self.watching is None:  # the publishers connect on the first report, in the replica's event loop
            for p in self.publishers:
                await p.start()
            self.watching = asyncio.create_task(self._watch(), name="call watcher")
        await self.board.update(report)

    async def streams(self) -> dict[str, list[str]]:
        return listing(self.board)

    async def summary(self, stream_id: str) -> dict[str, Any] | None:
        return summary_body(self.board, stream_id)

    async def events(self) -> AsyncIterator[bytes]:
        """The dashboard's event stream of every call, for ``handle.options(stream=True)``; it ends when the
        ingress cancels it (its browser went away)."""
        async with aclosing(event_stream(self.board.feed, self.stop)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            for replica in list(self.board.replicas):
                if await asyncio.to_thread(alive, replica):
                    continue
                for stream_id in self.board.lost(replica):
                    message = (f"call {stream_id} lost: its ingress replica {replica} died (its node or process "
                               "is gone); the utterances published before stand, the client must call again")
                    log.error("%s", message)
                    await publish_now(CallErrorEvent(stream_id=stream_id, error="replica_lost", message=message),
                                      self.publishers)
