"""Calls lost with their ingress replica. A call's state lives in the replica that took it, so when that replica
dies (its node lost, its process killed) Ray Serve starts a new replica but the call cannot go on there: its client
sees the socket close, and this deployment says so on the bus, a ``call_error`` event per lost call, and in the log.

Ingress replicas report each call's start and end here (``ingress.ReportedCalls``); every ``WATCH_S`` the watcher
looks up the replicas that hold live calls by their actor names, and a replica Ray no longer knows is dead. The
watcher runs on the head node, whose loss ends the whole cluster anyway (docs/cluster.md: head restart).
"""

from __future__ import annotations

import asyncio
import logging

import ray
from ray import serve

from emostream.stream.config import Config
from emostream.stream.events import CallErrorEvent
from emostream.stream.flags import publishers_for
from emostream.stream.pipeline import publish_now
from emostream.stream.publishers import Publisher

log = logging.getLogger("emo-stream.cluster")
WATCH_S = 2.0
HEAD = {"node:__internal_head__": 0.001}  # Ray's own resource of the head node


def alive(replica: str) -> bool:
    try:
        ray.get_actor(replica, namespace="serve")
    except ValueError:  # no live actor of that name: it died
        return False
    return True


@serve.deployment(num_replicas=1, max_ongoing_requests=10000, ray_actor_options={"num_cpus": 0, "resources": HEAD},
                  logging_config={"log_level": "WARNING", "enable_access_log": False})
class CallWatcher:
    def __init__(self, cfg: Config) -> None:
        self.publishers: list[Publisher] = publishers_for(cfg)
        self.calls: dict[str, str] = {}  # stream id → actor name of the ingress replica serving it
        self.watching: asyncio.Task[None] | None = None

    async def started(self, stream_id: str, replica: str) -> None:
        if self.watching is None:  # the publishers connect on the first call, in the replica's event loop
            for p in self.publishers:
                await p.start()
            self.watching = asyncio.create_task(self._watch(), name="call watcher")
        self.calls[stream_id] = replica

    async def ended(self, stream_id: str) -> None:
        self.calls.pop(stream_id, None)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            for replica in set(self.calls.values()):
                if await asyncio.to_thread(alive, replica):
                    continue
                for stream_id in [s for s, r in self.calls.items() if r == replica]:
                    del self.calls[stream_id]
                    message = (f"call {stream_id} lost: its ingress replica {replica} died (its node or process "
                               "is gone); the utterances published before stand, the client must call again")
                    log.error("%s", message)
                    await publish_now(CallErrorEvent(stream_id=stream_id, error="replica_lost", message=message),
                                      self.publishers)
