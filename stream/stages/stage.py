"""A stage turns each incoming message into zero or more outgoing ones; stages are joined by bounded queues.

Bounded queues give back-pressure: a slow stage makes the ones before it wait instead of buffering
without limit. ``EndOfStream`` flushes every stage in order and then ends it.

A stage with ``ahead`` > 1 reads ahead: while the work of one item is under way it takes the next ones (up to
``ahead`` in flight), and their outputs still leave in input order. The ASR stage does so that the finals of
one stream that queue up behind it (a fast replay, a machine short of CPU) are decoded as one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

from emostream.stream.messages import EndOfStream

In = TypeVar("In")
Out = TypeVar("Out")
T = TypeVar("T")


class Stage(Generic[In, Out]):
    """Consumes messages of type ``In``; anything else (an ``Outgoing`` event) is passed on."""

    name = "stage"
    accepts: tuple[type, ...] = ()
    ahead = 1  # items whose work may be in flight at once (see ``start``)

    def attach(self, outbox: asyncio.Queue) -> None:
        """Gives the stage its outbox, for stages that also emit from background work (partials)."""

    async def process(self, item: In) -> list[Out]:
        raise NotImplementedError

    def start(self, item: In) -> Awaitable[list[Out]]:
        """For a stage that reads ahead: the item's bookkeeping, done at once and in input order, and the rest of
        its work, which ``run_stage`` runs beside the next items'. By default all of it is ``process``."""
        return self.process(item)

    async def flush(self) -> list[Out]:
        """Called once at the end of the stream, for anything still held."""
        return []

    def close(self) -> None:
        """Called once when the stage stops, however its stream ended (an error or a cancelled call included):
        releases what it runs beside the event loop (threads, background tasks)."""


async def run_stage(stage: Stage[In, Out], inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
    stage.attach(outbox)
    try:
        if stage.ahead > 1:
            await _read_ahead(stage, inbox, outbox)
            return
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


async def _read_ahead(stage: Stage[In, Out], inbox: asyncio.Queue, outbox: asyncio.Queue) -> None:
    """``run_stage`` for a stage with ``ahead`` > 1: each item's work is a task of its own, and one task passes the
    outputs on in input order (``flight`` holds, in that order, the work under way and what passes through; each
    holds one of the ``ahead`` places until its outputs have left)."""
    flight: asyncio.Queue[asyncio.Future[list[Any]] | EndOfStream] = asyncio.Queue()
    room = asyncio.Semaphore(stage.ahead)

    def ready(items: list[Any]) -> asyncio.Future[list[Any]]:
        done = asyncio.get_running_loop().create_future()
        done.set_result(items)
        return done

    async def emit() -> None:
        while not isinstance(entry := await flight.get(), EndOfStream):
            for out in await entry:
                await outbox.put(out)
            room.release()
        for out in await stage.flush():  # after every item's work: nothing of the stream is still under way
            await outbox.put(out)
        await outbox.put(entry)

    async with asyncio.TaskGroup() as group:  # a failed item's work ends the stage, as in the in-order loop
        group.create_task(emit())
        while not isinstance(item := await inbox.get(), EndOfStream):
            await room.acquire()
            passed = not isinstance(item, stage.accepts)
            flight.put_nowait(ready([item]) if passed else group.create_task(_outputs(stage.start(item))))
        flight.put_nowait(item)


async def _outputs(work: Awaitable[list[Out]]) -> list[Out]:
    return await work


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
