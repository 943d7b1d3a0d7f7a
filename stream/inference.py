"""Fusion inference: a shared service that micro-batches requests from every stream, and the two stages
that use it — the audio-only estimate at the endpoint and the fused event once the transcript is in.

The model runs on one batch three ways (both modalities, audio only, text only), so every event
carries per-modality scores whatever the architecture.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import torch

from emostream.models.bundle import Bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.models.labels import VALENCE_AROUSAL
from emostream.stream.events import EmotionEvent, EstimateEvent
from emostream.stream.messages import Acoustic, InContext, Outgoing
from emostream.stream.stage import Stage, elapsed_ms

Scores = dict[str, dict[str, float] | None]


class EmotionClassifier:
    def __init__(self, bundle: Bundle, device: torch.device) -> None:
        self.bundle = bundle
        self.device = device
        self.labels = bundle.meta.labels

    @torch.inference_mode()
    def classify(self, items: list[UtteranceInput]) -> list[Scores]:
        """Per item: probabilities for ``fused``, ``audio`` and ``text`` (None where that modality is absent).

        With one modality present the fused output is that modality's (models honour the masks), so the
        single-modality passes run only on the rows that have both: an audio-only estimate costs one pass.
        """
        batch = collate(items, self.bundle.meta.dims).to(self.device)
        model = self.bundle.model
        fused = model(batch).softmax(-1).cpu()
        has_audio, has_text = batch.has_audio.cpu(), batch.has_text.cpu()
        probs = {"fused": fused, "audio": fused.clone(), "text": fused.clone()}
        both = (has_audio & has_text).nonzero().squeeze(1)
        if len(both):
            subset = batch.rows(both.to(self.device))
            probs["audio"][both] = model(subset.with_modalities(audio=True, text=False)).softmax(-1).cpu()
            probs["text"][both] = model(subset.with_modalities(audio=False, text=True)).softmax(-1).cpu()
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
    """Collects requests from all streams for up to ``max_wait_ms`` (or ``max_batch`` of them) and runs
    them as one batch: on a GPU many streams then cost about as much as one."""

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
                try:
                    batch.append(await asyncio.wait_for(self._requests.get(), deadline - time.monotonic()))
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


def summarise(probs: dict[str, float]) -> dict[str, float | str]:
    """The label, its confidence, rounded scores and valence/arousal of a distribution."""
    label = max(probs, key=probs.__getitem__)
    return {
        "label": label,
        "confidence": round(probs[label], 4),
        "scores": {k: round(v, 4) for k, v in probs.items()},
        "valence": round(sum(p * VALENCE_AROUSAL[k][0] for k, p in probs.items()), 4),
        "arousal": round(sum(p * VALENCE_AROUSAL[k][1] for k, p in probs.items()), 4),
    }


class EarlyEstimate(Stage[Acoustic, Acoustic]):
    """At the endpoint: the audio-only emotion, published at once, before ASR has run."""

    name = "estimate"
    accepts = (Acoustic,)

    def __init__(self, service: InferenceService, model_id: str) -> None:
        self.service = service
        self.model_id = model_id

    async def process(self, item: Acoustic) -> list[Acoustic | Outgoing]:
        utt = item.utterance
        if not len(item.frames):
            return [item]
        t0 = time.monotonic()
        scores = await self.service.classify(UtteranceInput(audio=item.frames, sentence=None, tokens=None,
                                                            speaker=utt.speaker))
        audio = scores["audio"]
        assert audio is not None
        event = EstimateEvent(
            stream_id=utt.stream_id, utterance_id=utt.utterance_id, seq=utt.seq, channel=utt.channel,
            speaker=utt.speaker, start_s=round(utt.start_s, 3), end_s=round(utt.end_s, 3),
            latency_ms=item.latency_ms | {"inference": (took := elapsed_ms(t0, time.monotonic()))},
            model_id=self.model_id, **summarise(audio),
        )
        return [Outgoing(event, utt.audio_end_wall), replace(item, latency_ms=item.latency_ms | {"estimate": took})]


class Inference(Stage[InContext, Outgoing]):
    name = "inference"
    accepts = (InContext,)

    def __init__(self, service: InferenceService, model_id: str) -> None:
        self.service = service
        self.model_id = model_id

    async def process(self, item: InContext) -> list[Outgoing]:
        t0 = time.monotonic()
        emb = item.embedded
        acoustic = emb.transcribed.acoustic
        utt = acoustic.utterance
        inp = UtteranceInput(
            audio=acoustic.frames if len(acoustic.frames) else None,
            sentence=emb.sentence,
            tokens=emb.tokens,
            speaker=utt.speaker,
            context=item.context,
        )
        scores = await self.service.classify(inp)
        labels = self.service.classifier.labels
        fused = scores["fused"] or dict.fromkeys(labels, 1 / len(labels))  # neither modality: say so, evenly
        t = emb.transcribed.transcript
        event = EmotionEvent(
            stream_id=utt.stream_id, utterance_id=utt.utterance_id, seq=utt.seq, channel=utt.channel,
            speaker=utt.speaker, start_s=round(utt.start_s, 3), end_s=round(utt.end_s, 3),
            latency_ms=item.latency_ms | {"inference": elapsed_ms(t0, time.monotonic())},
            transcript=t.text,
            modality_scores={k: _rounded(scores[k]) for k in ("audio", "text")},
            model_id=self.model_id,
            split=utt.split,
            asr={"avg_logprob": round(t.avg_logprob, 4), "no_speech_prob": round(t.no_speech_prob, 4)},
            **summarise(fused),
        )
        return [Outgoing(event, utt.audio_end_wall)]


def _rounded(p: dict[str, float] | None) -> dict[str, float] | None:
    return None if p is None else {k: round(v, 4) for k, v in p.items()}
