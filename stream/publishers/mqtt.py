"""MQTT through aiomqtt, QoS 1, with a bounded spool and reconnection.

Start-up: up to ``connect_attempts`` connection attempts with exponential backoff, then a clear error
(exit code 3). During the run: events wait in a spool of ``spool_size``; if the broker goes away the
publisher reconnects with backoff and sends the spool in order; a full spool blocks the pipeline
rather than dropping events. At exit it keeps trying for ``drain_timeout_s`` and reports how many
events, if any, could not be delivered. QoS 1 is at-least-once: deduplicate by ``utterance_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import aiomqtt

from emostream.stream.config import MqttConfig
from emostream.stream.errors import BrokerUnreachable
from emostream.stream.events import EmotionEvent

log = logging.getLogger(__name__)


class MqttPublisher:
    def __init__(self, cfg: MqttConfig, client_id: str) -> None:
        self.name = f"mqtt://{cfg.host}:{cfg.port}"
        self.cfg = cfg
        self.client_id = cfg.client_id or f"{client_id}-{os.getpid()}"
        self._spool: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(cfg.spool_size)
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self.delivered = 0
        self.reconnects = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")
        done = asyncio.create_task(self._connected.wait())
        await asyncio.wait({done, self._task}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        if self._failure is not None:
            raise self._failure

    async def publish(self, event: EmotionEvent) -> None:
        if self._failure is not None:
            raise self._failure
        await self._spool.put((event.topic(self.cfg.topic_prefix), event.to_json().encode()))

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._spool.join(), self.cfg.drain_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if left := self._spool.qsize():
            raise BrokerUnreachable(
                f"MQTT broker {self.cfg.host}:{self.cfg.port}: {left} events could not be delivered within "
                f"{self.cfg.drain_timeout_s:.0f} s ({self.delivered} were); the JSON Lines output has them all"
            )

    async def _run(self) -> None:
        cfg = self.cfg
        backoff, attempts, pending = cfg.backoff_s, 0, None
        while True:
            try:
                async with aiomqtt.Client(cfg.host, cfg.port, identifier=self.client_id, timeout=10) as client:
                    if attempts and self._connected.is_set():
                        self.reconnects += 1
                        log.warning("%s: reconnected; sending %d spooled events", self.name, self._spool.qsize())
                    self._connected.set()
                    backoff = cfg.backoff_s
                    while True:
                        if pending is None:
                            pending = await self._spool.get()
                        await client.publish(pending[0], pending[1], qos=cfg.qos)
                        pending = None
                        self.delivered += 1
                        self._spool.task_done()
            except aiomqtt.MqttError as e:
                attempts += 1
                if not self._connected.is_set() and attempts >= cfg.connect_attempts:
                    self._failure = BrokerUnreachable(
                        f"cannot reach MQTT broker {cfg.host}:{cfg.port} after {attempts} attempts ({e}); "
                        "start the broker or fix publish.mqtt.host/port (--mqtt HOST:PORT)"
                    )
                    return
                log.warning("%s: %s; retrying in %.1f s", self.name, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, cfg.max_backoff_s)
