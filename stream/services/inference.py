"""Fusion inference shared by every stream: a service that micro-batches requests from all streams.

The model runs on one batch three ways (both modalities, audio only, text only), so every event
carries per-modality scores whatever the architecture.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import torch

from emostream.models.bundle import Bundle
from emostream.models.collate import UtteranceInput, collate

Scores = dict[str, dict[str, float] | None]


class EmotionClassifier:
    def __init__(self, bundle: Bundle, device: torch.device) -> None:
        self.bundle = bundle
        self.device = device
        self.labels = bundle.meta.labels

    @torch.inference_mode()
    def classify(self, items: list[UtteranceInput]) -> list[Scores]:
        """Per item: probabilities for ``fused``, ``audio`` and ``text`` (None where that modality is absent),
        from the model's ``modality_logits``: with one modality present the fused output is that modality's
        (models honour the masks), so an audio-only estimate costs one pass.
        """
        batch = collate(items, self.bundle.meta.dims).to(self.device)
        logits = self.bundle.model.modality_logits(batch)
        fused, audio, text = (x.softmax(-1).cpu() for x in logits)
        probs = {"fused": fused, "audio": audio, "text": text}
        has_audio, has_text = batch.has_audio.cpu(), batch.has_text.cpu()
        present = {"fused": has_audio | has_text, "audio": has_audio, "text": has_text}
        return [
            {
                kind: (dict(zip(self.labels, map(float, p[i]), strict=True)) if present[kind][i] else None)
                for kind, p in probs.items()
            }
            for i in range(len(items))
        ]


@dataclass
class _Request:
    item: UtteranceInput
    done: asyncio.Future[Scores]


class InferenceService:
    """Runs the requests of all streams in batches (at most ``max_batch``): on a GPU many streams then cost about as
    much as one. A batch is what queued while the previous one ran, as in the ASR engine, so one stream waits for
    nobody; ``max_wait_ms`` > 0 also holds a batch's first request that long for company."""

    def __init__(self, classifier: EmotionClassifier, max_batch: int, max_wait_ms: float) -> None:
        self.classifier = classifier
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._requests: asyncio.Queue[_Request] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def classify(self, item: UtteranceInput) -> Scores:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="inference-service")
        req = _Request(item, asyncio.get_running_loop().create_future())
        await self._requests.put(req)
        return await req.done

    async def _run(self) -> None:
        while True:
            batch = [await self._requests.get()]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                if not self._requests.empty():
                    batch.append(self._requests.get_nowait())
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._requests.get(), left))
                except TimeoutError:
                    break
            batch = [r for r in batch if not r.done.cancelled()]
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self.classifier.classify, [r.item for r in batch])
            except Exception as e:  # one bad input must not stall the streams batched with it
                for r in batch:
                    if not r.done.cancelled():
                        r.done.set_exception(e)
                continue
            self.batches += 1
            self.items += len(batch)
            for r, result in zip(batch, results, strict=True):
                if not r.done.cancelled():
                    r.done.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
