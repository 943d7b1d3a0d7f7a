"""One Whisper model (CTranslate2, through faster-whisper) for every stream: encodes and decodes, batched.

A CTranslate2 model runs one call at a time, so every use of it goes through one queue here: finals before
partials, and each call takes every waiting job of the same kind, priority and shape as one batch (a batch
of decodes costs far less per stream than one decode at a time; on a GPU, encodes batch too). Nothing waits
for company: a batch forms from what queued while the previous call ran, so one stream pays no delay.

On a CPU encodes run one at a time: the encoder's matrix products already fill the cores, so a batch of N
takes about N times one encode and hands every result over at its end, while one at a time does the same work
and lets a final that arrives meanwhile go next, ahead of the partials still queued.

Encoder output is kept per utterance (:class:`Encoding`) so that the final decode and the bundle's acoustic
features (Whisper encoder states, models/whisper_states.py) can share one encoder pass.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emostream.models.whisper_states import padded_mel

FINAL, PARTIAL = 0, 1
YIELDS = 4  # event-loop turns between batches (see _run)


@dataclass(frozen=True)
class Encoding:
    """Encoder output of one utterance padded to the window: ``(frames, dim)``, 20 ms per frame, on the model's
    device (a NumPy array on the CPU, a torch tensor on a GPU)."""

    states: Any
    samples: int  # audio samples it encodes (the rest of the window is padding)


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    op: str = field(compare=False)  # "encode", "decode" or "call"
    shape: int = field(compare=False)  # jobs batch only with jobs of the same op, priority and shape
    payload: Any = field(compare=False)
    done: asyncio.Future = field(compare=False)


class WhisperEngine:
    """Serialises and batches all work on one faster-whisper ``WhisperModel``."""

    def __init__(self, model: Any, window_s: float, max_batch: int, prompt: list[int],
                 decode_options: dict[str, Any]) -> None:
        import ctranslate2

        self.model = model
        self.window_s = window_s
        self.max_batch = max_batch
        self.prompt = prompt  # the decoder's start tokens, and generate()'s keywords: the same for every decode
        self.decode_options = decode_options
        self.on_gpu = model.model.device == "cuda"
        self._storage = ctranslate2.StorageView.from_array
        self._jobs: list[_Job] = []
        self._wake = asyncio.Event()
        self._order = itertools.count()
        self._worker: asyncio.Task[None] | None = None
        self.batches: dict[str, Counter[int]] = {"encode": Counter(), "decode": Counter()}  # calls per batch size

    @property
    def waiting(self) -> int:
        """Jobs queued for the model (not counting the call it is running)."""
        return len(self._jobs)

    async def encode(self, audio: np.ndarray, priority: int) -> Encoding:
        # The mel spectrogram in a worker thread: it runs beside the model's current call, not on the event loop.
        mel = await asyncio.to_thread(padded_mel, self.model.feature_extractor, audio, self.window_s)
        return Encoding(await self._submit("encode", mel.shape[-1], mel, priority), len(audio))

    async def decode(self, encoding: Encoding, priority: int) -> Any:
        """CTranslate2's ``WhisperGenerationResult`` for one encoding, decoded from ``prompt``."""
        return await self._submit("decode", encoding.states.shape[0], encoding.states, priority)

    async def call(self, fn: Callable[[], Any], priority: int) -> Any:
        """Any other use of the model (faster-whisper's own long-form transcription), alone and in turn."""
        return await self._submit("call", 0, fn, priority)

    async def _submit(self, op: str, shape: int, payload: Any, priority: int) -> Any:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="whisper-engine")
        job = _Job(priority, next(self._order), op, shape, payload, asyncio.get_running_loop().create_future())
        heapq.heappush(self._jobs, job)
        self._wake.set()
        return await job.done

    def _next_batch(self) -> list[_Job]:
        """The most urgent job and every waiting job it can share a call with, oldest first."""
        head = heapq.heappop(self._jobs)
        if head.op == "call":
            return [head]
        limit = self.max_batch if self.on_gpu or head.op == "decode" else 1
        mates = sorted(j for j in self._jobs if (j.op, j.priority, j.shape) == (head.op, head.priority, head.shape))
        batch = [head, *mates[: limit - 1]]
        taken = {id(j) for j in batch}
        self._jobs = [j for j in self._jobs if id(j) not in taken]
        heapq.heapify(self._jobs)
        return batch

    async def _run(self) -> None:
        while True:
            if not self._jobs:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [j for j in self._next_batch() if not j.done.cancelled()]
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self._execute, batch[0].op, [j.payload for j in batch])
            except Exception as e:  # a failure belongs to the streams that asked for this call
                for j in batch:
                    if not j.done.cancelled():
                        j.done.set_exception(e)
                continue
            if batch[0].op in self.batches:
                self.batches[batch[0].op][len(batch)] += 1
            for j, result in zip(batch, results, strict=True):
                if not j.done.cancelled():
                    j.done.set_result(result)
            # Let the callers of this batch queue their next step (a final's decode after its encode, a few
            # callbacks away) before the next batch is chosen: a waiting partial must not slip in between.
            for _ in range(YIELDS):
                await asyncio.sleep(0)

    def _execute(self, op: str, payloads: list[Any]) -> list[Any]:
        if op == "call":
            return [payloads[0]()]
        if op == "encode":
            return self._rows(self.model.model.encode(self._storage(np.ascontiguousarray(np.stack(payloads)))))
        return self.model.model.generate(self._storage(self._stack(payloads)), [self.prompt] * len(payloads),
                                         **self.decode_options)

    def _rows(self, output: Any) -> list[Any]:
        """One row per utterance, each its own copy (a kept row must not keep its whole batch alive)."""
        if self.on_gpu:
            import torch

            return [row.clone() for row in torch.as_tensor(output, device=f"cuda:{self.model.model.device_index[0]}")]
        return [row.copy() for row in np.asarray(output)]

    def _stack(self, rows: list[Any]) -> Any:
        if self.on_gpu:
            import torch

            return torch.stack(rows).contiguous()
        return np.ascontiguousarray(np.stack(rows))

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

