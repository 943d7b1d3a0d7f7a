"""A stage turns each incoming message into zero or more outgoing ones; stages are joined by bounded queues.

Bounded queues give back-pressure: a slow stage makes the ones before it wait instead of buffering
without limit. ``EndOfStream`` flushes every stage in order and then ends it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from typing import Any, Generic, TypeVar

from emostream.stream.messages import EndOfStream

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")


class Stage(Generic[In, Out]):
    """Consumes messages of type ``In``; anything else (an ``Outgoing`` event) is passed on."""

    name = "stage"
    accepts: tuple[type, ...] = ()

    def attach(self, outbox: asyncio.Queue) -> None:
        """Gives the stage its outbox, for stages that also emit from background work (partials)."""

    async def process(self, item: In) -> list[Out]:
        raise NotImplementedError

    async def flush(self) -> list[Out]:
        """Called once at the end of the stream, for anything still held."""
        return []

    def close(self) -> None:
        """Called once when the stage stops, however its stream ended (an error or a cancelled call included):
        releases what it runs beside the event loop (threads, background tasks)."""


async def run_stage(stage: Stage[In, Out], inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
    stage.attach(outbox)
    try:
        while True:
            item = await inbox.get()
            if isinstance(item, EndOfStream):
                for out in await stage.flush():
                    await outbox.put(out)
                await outbox.put(item)
                return
            if not isinstance(item, stage.accepts):
                await outbox.put(item)
                continue
            for out in await stage.process(item):
                await outbox.put(out)
    finally:
        stage.close()


def elapsed_ms(since: float, now: float) -> float:
    return round((now - since) * 1000.0, 3)


class Speculation(Generic[T]):
    """Work started on a guess (the utterance as the endpoint will cut it, its probable transcript), used
    only if the guess comes true. A newer guess or a different outcome cancels it (counted in ``wasted``)."""

    def __init__(self) -> None:
        self._key: Hashable = None
        self._task: asyncio.Task[T] | None = None
        self.wasted = 0

    def start(self, key: Hashable, work: Coroutine[Any, Any, T]) -> None:
        """Starts ``work`` for ``key``; a repeated guess (same key) keeps the work already under way."""
        if self._task is not None and self._key == key:
            work.close()
            return
        self.drop()
        self._key, self._task = key, asyncio.create_task(work)

    def take(self, key: Hashable) -> asyncio.Task[T] | None:
        """The work started for exactly ``key`` (usually done: only its remainder is awaited); else None."""
        if self._task is not None and self._key == key:
            task, self._task = self._task, None
            return task
        self.drop()
        return None

    def drop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.wasted += 1
            self._task = None
