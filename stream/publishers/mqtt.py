"""MQTT through aiomqtt, QoS 1, with a bounded spool, reconnection, optional persistence, login and TLS.

Start-up: up to ``connect_attempts`` connection attempts with exponential backoff, then a clear error
(exit code 3); a broker that refuses the login fails at once (retrying a wrong password only gets the
account locked). During the run every event waits in a spool of ``spool_size`` and leaves it only when the
broker has acknowledged it (PUBACK): if the connection drops mid-flight the event is sent again after the
reconnection, so nothing is lost and a duplicate is possible (deduplicate by ``utterance_id``, ``type``,
``revision``). A full spool first drops partials and metrics (counted in ``dropped``, with a rate-limited
warning); finals are never dropped: a spool full of them makes ``publish`` wait, which back-pressures the
pipeline. With ``spool_path`` the spool is mirrored in SQLite, so what a killed process had not delivered
is sent first by the next one. At exit it keeps trying for ``drain_timeout_s`` and reports what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import ssl
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from emostream.stream.config import MqttConfig
from emostream.stream.errors import BrokerUnreachable, UserError
from emostream.stream.events import Event

log = logging.getLogger(__name__)

DROPPABLE = frozenset({"partial", "metrics"})  # superseded by later events; finals and estimates are not
WARN_EVERY_S = 5.0  # at most one "spool full" warning per this many seconds


@dataclass(eq=False)  # identity, not value: two identical payloads are two events
class Spooled:
    key: int  # SQLite rowid with a persistent spool, else a counter: the order of publication
    topic: str
    payload: bytes
    droppable: bool


class Spool:
    """Events not yet acknowledged by the broker, oldest first; mirrored in SQLite when given a path.

    SQLite (WAL, autocommit) because one committed row per event survives SIGKILL without any recovery code
    of ours, and an exclusive lock keeps a second process from sending the same rows. Writes are small and
    few per second, so they run on the event loop.
    """

    def __init__(self, path: str) -> None:
        self.items: deque[Spooled] = deque()
        self._db: sqlite3.Connection | None = None
        self._next = 0
        if path:
            self._open(Path(path))

    def _open(self, path: Path) -> None:
        try:
            db = sqlite3.connect(path, isolation_level=None)
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process; fsync per event is not needed
            db.execute("CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
                       " payload BLOB NOT NULL, droppable INTEGER NOT NULL)")
            rows = db.execute("SELECT id, topic, payload, droppable FROM spool ORDER BY id").fetchall()
        except sqlite3.Error as e:
            hint = "another emo-stream uses it; give each process its own" if "locked" in str(e) else "fix the path"
            raise UserError(f"publish.mqtt.spool_path {path}: cannot use it as a spool ({e}); {hint}") from None
        self._db = db
        self.items.extend(Spooled(i, t, bytes(p), bool(d)) for i, t, p, d in rows)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, topic: str, payload: bytes, droppable: bool) -> None:
        if self._db is not None:
            key = self._db.execute("INSERT INTO spool (topic, payload, droppable) VALUES (?, ?, ?)",
                                   (topic, payload, int(droppable))).lastrowid or 0
        else:
            key = self._next = self._next + 1
        self.items.append(Spooled(key, topic, payload, droppable))

    def remove(self, entry: Spooled) -> None:
        if self._db is not None:
            self._db.execute("DELETE FROM spool WHERE id = ?", (entry.key,))
        if self.items and self.items[0] is entry:
            self.items.popleft()
        else:
            self.items.remove(entry)

    def oldest_droppable(self, skip: Spooled | None) -> Spooled | None:
        return next((e for e in self.items if e.droppable and e is not skip), None)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class MqttPublisher:
    def __init__(self, cfg: MqttConfig, client_id: str) -> None:
        self.name = f"mqtt{'s' if cfg.uses_tls else ''}://{cfg.host}:{cfg.port}"
        self.cfg = cfg
        self.client_id = cfg.client_id or f"{client_id}-{os.getpid()}"
        self._spool: Spool | None = None
        self._cond = asyncio.Condition()  # guards the spool: producers wait for room, the sender for events
        self._inflight: Spooled | None = None  # sent, PUBACK awaited: never dropped
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._warned_at = -WARN_EVERY_S
        self.delivered = 0
        self.dropped = 0
        self.reconnects = 0

    async def start(self) -> None:
        kwargs = self._client_kwargs()  # bad files or a missing variable fail before connecting
        self._spool = Spool(self.cfg.spool_path)
        if left := len(self._spool):
            log.warning("%s: %d events left undelivered by an earlier run in %s; sending them first",
                        self.name, left, self.cfg.spool_path)
        self._task = asyncio.create_task(self._guarded(kwargs), name="mqtt-publisher")
        done = asyncio.create_task(self._connected.wait())
        await asyncio.wait({done, self._task}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        if self._failure is not None:
            self._spool.close()
            raise self._failure

    def _client_kwargs(self) -> dict[str, Any]:
        """aiomqtt.Client arguments; the password is read here, held only in them, and never logged."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {"hostname": cfg.host, "port": cfg.port, "identifier": self.client_id,
                                  "timeout": 10}
        password = cfg.password
        if cfg.password_env:
            password = os.environ.get(cfg.password_env, "")
            if not password:
                raise UserError(f"publish.mqtt.password_env names {cfg.password_env}, which is not set or empty; "
                                "export it before starting emo-stream")
        if cfg.username or password:
            kwargs |= {"username": cfg.username or None, "password": password or None}
        if cfg.uses_tls:
            for key in ("tls_ca", "tls_cert", "tls_key"):
                if (value := getattr(cfg, key)) and not Path(value).is_file():
                    raise UserError(f"publish.mqtt.{key}: {value}: no such file")
            kwargs["tls_params"] = aiomqtt.TLSParameters(ca_certs=cfg.tls_ca or None, certfile=cfg.tls_cert or None,
                                                         keyfile=cfg.tls_key or None, cert_reqs=ssl.CERT_REQUIRED)
            kwargs["tls_insecure"] = cfg.tls_insecure
        return kwargs

    async def publish(self, event: Event) -> None:
        if self._failure is not None:
            raise self._failure
        assert self._spool is not None, "start() first"
        droppable = event.type in DROPPABLE
        async with self._cond:
            while len(self._spool) >= self.cfg.spool_size:
                if victim := self._spool.oldest_droppable(self._inflight):
                    self._spool.remove(victim)
                    self._count_drop()
                elif droppable:
                    self._count_drop()
                    return
                else:  # only finals spooled: wait for PUBACKs, which back-pressures the pipeline
                    await self._cond.wait()
                    if self._failure is not None:
                        raise self._failure
            self._spool.add(event.topic(self.cfg.topic_prefix), event.to_json().encode(), droppable)
            self._cond.notify_all()

    def _count_drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("%s: spool full (%d events, broker away?): dropped %d partial/metrics events so far; "
                        "final events are kept and the pipeline waits for the broker",
                        self.name, self.cfg.spool_size, self.dropped)

    async def close(self) -> None:
        if self._spool is None:
            return

        async def drained() -> None:
            async with self._cond:
                await self._cond.wait_for(lambda: not self._spool or (self._task is not None and self._task.done()))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained(), self.cfg.drain_timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = len(self._spool)
        self._spool.close()
        if self.dropped:
            log.warning("%s: %d partial/metrics events were dropped while the spool was full", self.name, self.dropped)
        if left:
            kept = f"they stay in {self.cfg.spool_path} for the next start" if self.cfg.spool_path else \
                "the JSON Lines output has them all"
            raise BrokerUnreachable(
                f"MQTT broker {self.cfg.host}:{self.cfg.port}: {left} events could not be delivered within "
                f"{self.cfg.drain_timeout_s:.0f} s ({self.delivered} were); {kept}"
            )

    async def _send(self, client: aiomqtt.Client, entry: Spooled) -> None:
        """Publishes and returns on PUBACK; raises MqttError as soon as the connection drops.

        aiomqtt 2.x does not end a pending QoS 1 publish when the connection drops (it waits for its 10 s
        timeout); its ``_disconnected`` future says when, so the event is resent promptly after reconnecting.
        """
        sending = asyncio.ensure_future(client.publish(entry.topic, entry.payload, qos=self.cfg.qos))
        gone: asyncio.Future[None] | None = getattr(client, "_disconnected", None)
        if gone is None:
            await sending
            return
        try:
            await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when close() cancels us: leave no orphan task behind
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await sending
        if sending.cancelled():
            raise aiomqtt.MqttError("connection lost while waiting for the PUBACK")
        sending.result()

    async def _guarded(self, kwargs: dict[str, Any]) -> None:
        """A bug in the sender must fail the run loudly, not leave the pipeline waiting on a dead task."""
        try:
            await self._run(kwargs)
        except Exception as e:
            log.exception("%s: publisher failed", self.name)
            self._failure = BrokerUnreachable(f"MQTT publisher {self.name} failed: {e!r}")
            async with self._cond:
                self._cond.notify_all()

    async def _run(self, kwargs: dict[str, Any]) -> None:
        cfg, spool = self.cfg, self._spool
        assert spool is not None
        backoff, attempts = cfg.backoff_s, 0
        while True:
            try:
                async with aiomqtt.Client(**kwargs) as client:
                    if self._connected.is_set():
                        self.reconnects += 1
                        log.warning("%s: reconnected; sending %d spooled events", self.name, len(spool))
                    self._connected.set()
                    backoff = cfg.backoff_s
                    while True:
                        async with self._cond:
                            await self._cond.wait_for(lambda: len(spool) > 0)
                            entry = self._inflight = spool.items[0]
                        await self._send(client, entry)
                        async with self._cond:
                            self._inflight = None
                            spool.remove(entry)
                            self.delivered += 1
                            self._cond.notify_all()
            except aiomqtt.MqttError as e:
                self._inflight = None  # it stays at the head of the spool and goes first after reconnecting
                attempts += 1
                refused = isinstance(e, MqttConnectError)
                if not self._connected.is_set() and (refused or attempts >= cfg.connect_attempts):
                    self._failure = BrokerUnreachable(
                        f"MQTT broker {cfg.host}:{cfg.port} refused the connection ({e}); check "
                        "publish.mqtt.username and password/password_env" if refused else
                        f"cannot reach MQTT broker {cfg.host}:{cfg.port} after {attempts} attempts ({e}); "
                        "start the broker or fix publish.mqtt.host/port (--mqtt HOST:PORT)"
                        + (" and the publish.mqtt.tls_* settings" if cfg.uses_tls else "")
                    )
                    async with self._cond:
                        self._cond.notify_all()
                    return
                log.warning("%s: %s; retrying in %.1f s", self.name, e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, cfg.max_backoff_s)
