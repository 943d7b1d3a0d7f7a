"""The two stages that use the shared inference service: the audio-only estimate at the endpoint and the
fused event once the transcript is in."""

from __future__ import annotations

import time
from dataclasses import replace

from emostream.models.collate import UtteranceInput
from emostream.models.labels import VALENCE_AROUSAL
from emostream.stream.events import EmotionEvent, EstimateEvent
from emostream.stream.messages import Acoustic, InContext, Outgoing
from emostream.stream.services.interface import Classifier
from emostream.stream.stages.stage import Stage, elapsed_ms


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

    def __init__(self, service: Classifier, model_id: str) -> None:
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

    def __init__(self, service: Classifier, model_id: str, labels: tuple[str, ...]) -> None:
        self.service = service
        self.model_id = model_id
        self.labels = labels

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
        labels = self.labels
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
            asr={"avg_logprob": round(t.avg_logprob, 4), "no_speech_prob": round(t.no_speech_prob, 4),
                 "speculated": t.speculated},
            **summarise(fused),
        )
        return [Outgoing(event, utt.audio_end_wall)]


def _rounded(p: dict[str, float] | None) -> dict[str, float] | None:
    return None if p is None else {k: round(v, 4) for k, v in p.items()}
