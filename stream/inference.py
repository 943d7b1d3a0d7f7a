"""Stage: fusion inference with the bundle's model; turns an utterance in context into an emotion event.

The model runs three times on one batch: with both modalities, audio only and text only, so every
event carries per-modality scores whatever the architecture.
"""

from __future__ import annotations

import asyncio
import time

import torch

from emostream.models.bundle import Bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.models.labels import VALENCE_AROUSAL
from emostream.stream.events import EmotionEvent
from emostream.stream.messages import InContext, Scored
from emostream.stream.stage import Stage, elapsed_ms


class EmotionClassifier:
    def __init__(self, bundle: Bundle, device: torch.device) -> None:
        self.bundle = bundle
        self.device = device
        self.labels = bundle.meta.labels

    @torch.inference_mode()
    def classify(self, items: list[UtteranceInput]) -> list[dict[str, dict[str, float] | None]]:
        """Per item: probabilities for ``fused``, ``audio`` and ``text`` (None where that modality is absent)."""
        batch = collate(items, self.bundle.meta.dims).to(self.device)
        model = self.bundle.model
        probs = {
            "fused": model(batch).softmax(-1).cpu(),
            "audio": model(batch.with_modalities(audio=True, text=False)).softmax(-1).cpu(),
            "text": model(batch.with_modalities(audio=False, text=True)).softmax(-1).cpu(),
        }
        present = {"fused": batch.has_audio | batch.has_text, "audio": batch.has_audio, "text": batch.has_text}
        present = {k: v.cpu() for k, v in present.items()}
        return [
            {
                kind: (dict(zip(self.labels, map(float, p[i]), strict=True)) if present[kind][i] else None)
                for kind, p in probs.items()
            }
            for i in range(len(items))
        ]


class Inference(Stage[InContext, Scored]):
    name = "inference"

    def __init__(self, classifier: EmotionClassifier) -> None:
        self.classifier = classifier

    async def process(self, item: InContext) -> list[Scored]:
        t0 = time.monotonic()
        emb = item.embedded
        acoustic = emb.transcribed.acoustic
        utt = acoustic.utterance
        usable_audio = len(acoustic.frames) > 0
        inp = UtteranceInput(
            audio=acoustic.frames if usable_audio else None,
            sentence=emb.sentence,
            tokens=emb.tokens,
            speaker=utt.speaker,
            context=item.context,
        )
        (scores,) = await asyncio.to_thread(self.classifier.classify, [inp])
        latency = item.latency_ms | {"inference": elapsed_ms(t0, time.monotonic())}
        fused = scores["fused"] or {}
        label = max(fused, key=fused.__getitem__) if fused else "neutral"
        valence = sum(p * VALENCE_AROUSAL[k][0] for k, p in fused.items())
        arousal = sum(p * VALENCE_AROUSAL[k][1] for k, p in fused.items())
        t = emb.transcribed.transcript
        event = EmotionEvent(
            stream_id=utt.stream_id,
            utterance_id=utt.utterance_id,
            seq=utt.seq,
            channel=utt.channel,
            speaker=utt.speaker,
            start_s=round(utt.start_s, 3),
            end_s=round(utt.end_s, 3),
            transcript=t.text,
            label=label,
            confidence=round(fused.get(label, 0.0), 4),
            scores=_rounded(fused),
            modality_scores={k: _rounded(scores[k]) for k in ("audio", "text")},
            valence=round(valence, 4),
            arousal=round(arousal, 4),
            model_id=self.classifier.bundle.meta.id,
            split=utt.split,
            asr={"avg_logprob": round(t.avg_logprob, 4), "no_speech_prob": round(t.no_speech_prob, 4)},
            latency_ms=latency,
            emitted_at=0.0,  # stamped when published
            )
        return [Scored(event, utt.audio_end_wall)]


def _rounded(p: dict[str, float] | None) -> dict[str, float] | None:
    return None if p is None else {k: round(v, 4) for k, v in p.items()}
