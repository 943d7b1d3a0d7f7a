"""Audio that arrives over a network connection: the server counterpart of ``replay`` and ``capture``.

A protocol handler (``stream/server/``) decodes each message into a ``(channels, n)`` int16 block at the
connection's sample rate and :meth:`NetworkSource.push`-es it; the pipeline iterates the source like any other
and gets 16 kHz :class:`AudioFrame`s and one :class:`EndOfStream`. The queue between them is bounded, so a
pipeline that falls behind stops the handler reading the socket (TCP back-pressure) instead of buffering a call
without limit. When the connection ends (cleanly or not) the handler calls :meth:`end`; what was pushed before
is still framed, and the utterance in flight is finalised by the stages' ``EndOfStream`` flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import numpy as np

from emostream.stream.messages import AudioFrame, EndOfStream
from emostream.stream.sources.resample import LiveResampler
from emostream.stream.stages.vad import SAMPLE_RATE


class NetworkSource:
    """One connection's audio, as a ``pipeline.Source`` (call it with the stop event to iterate)."""

    def __init__(self, stream_id: str, channels: int, sample_rate: int, frame_samples: int,
                 queue_blocks: int = 64) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.stream_id, self.channels, self.sample_rate = stream_id, channels, sample_rate
        self.frame_samples = frame_samples
        # Blocks with their arrival time; a str ends the call (the reason, "" if clean); None: the server stops.
        self._queue: asyncio.Queue[tuple[np.ndarray, float] | str | None] = asyncio.Queue(queue_blocks)
        self._ended = False  # no more pushes are accepted
        self._finished = False  # the consumer is gone: pushes are dropped instead of waiting
        self._late_error = ""  # the end reason, when the queue was full as the connection ended
        self.audio_s = 0.0  # seconds of input audio received, per channel

    @property
    def ended(self) -> bool:
        return self._ended

    async def push(self, block: np.ndarray) -> None:
        """Queues a ``(channels, n)`` int16 block; waits while the pipeline is behind (back-pressure)."""
        if block.ndim != 2 or block.shape[0] != self.channels or block.dtype != np.int16:
            raise ValueError(f"expected a ({self.channels}, n) int16 block, got {block.shape} {block.dtype}")
        if self._ended or self._finished or not block.shape[1]:
            return
        self.audio_s += block.shape[1] / self.sample_rate
        await self._queue.put((block, time.monotonic()))

    def end(self, error: str = "") -> None:
        """The connection is over; ``error`` says why if it ended abnormally (travels in ``EndOfStream``)."""
        if self._ended:
            return
        self._ended = True
        if self._finished:
            return
        try:
            self._queue.put_nowait(error)
        except asyncio.QueueFull:  # the consumer will find the end flag once it has drained the queue
            self._late_error = error

    async def __call__(self, stop: asyncio.Event) -> AsyncIterator[AudioFrame | EndOfStream]:
        resampler = LiveResampler(self.sample_rate, SAMPLE_RATE, self.channels)
        framer = _Framer(self.stream_id, self.channels, self.frame_samples)
        error = ""
        # A stop (SIGTERM) reaches a waiting loop as a None in the queue, so that each block costs one plain
        # ``get`` (a call sends 50 a second); a loop that is not waiting sees ``stop`` itself.
        watcher = asyncio.ensure_future(self._post_stop(stop))
        try:
            while not stop.is_set():  # stopped: finalise what was received
                if self._queue.empty() and self._ended:  # the end marker did not fit in the queue
                    error = self._late_error
                    break
                item = await self._queue.get()
                if item is None:
                    break
                if isinstance(item, str):
                    error = item
                    break
                block, wall = item
                for frame in framer.push(resampler(block), wall):
                    yield frame
        finally:
            watcher.cancel()
            self._finished = True
            while not self._queue.empty():  # wakes a handler waiting to push
                self._queue.get_nowait()
        for frame in framer.push(resampler.flush(), time.monotonic(), flush=True):
            yield frame
        yield EndOfStream(self.stream_id, frames=framer.index, peak=framer.peak / 32768.0, error=error)

    async def _post_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        with contextlib.suppress(asyncio.QueueFull):  # a full queue: the loop is not waiting
            self._queue.put_nowait(None)


class _Framer:
    """Cuts 16 kHz blocks of any length into frames of ``frame_samples`` per channel, in order."""

    def __init__(self, stream_id: str, channels: int, frame_samples: int) -> None:
        self.stream_id, self.frame_samples = stream_id, frame_samples
        self.pending = np.zeros((channels, 0), np.int16)
        self.index, self.peak = 0, 0

    def push(self, block: np.ndarray, wall: float, flush: bool = False) -> list[AudioFrame]:
        block = np.concatenate([self.pending, block], axis=1) if self.pending.shape[1] else block
        if flush and block.shape[1] % self.frame_samples:
            block = np.pad(block, ((0, 0), (0, self.frame_samples - block.shape[1] % self.frame_samples)))
        usable = block.shape[1] // self.frame_samples * self.frame_samples
        self.pending = block[:, usable:]
        if not usable:
            return []
        self.peak = max(self.peak, int(np.abs(block[:, :usable].astype(np.int32)).max()))
        out = []
        for k in range(0, usable, self.frame_samples):
            for ch in range(block.shape[0]):
                out.append(AudioFrame(self.stream_id, ch, self.index, block[ch, k : k + self.frame_samples], wall))
            self.index += 1
        return out
