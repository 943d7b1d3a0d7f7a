"""A call's summary per speaker, kept up to date from its events: what a supervisor reads after (or during) a call.

Plugged into a stream as one more publisher, like the alert engine: it sees the stream's final ``emotion`` events
and its ``alert`` events, and :meth:`CallSummary.event` renders a ``summary`` event at any time (the server
publishes the final one when the stream ends and serves the live one at ``GET /v1/streams/<id>``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from emostream.stream.events import AlertEvent, EmotionEvent, Event, SummaryEvent


@dataclass
class _Speaker:
    talk_s: float = 0.0
    utterances: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    valence: float = 0.0  # sums, divided when rendered
    arousal: float = 0.0
    peak_anger: dict[str, Any] | None = None
    alerts: list[str] = field(default_factory=list)


class CallSummary:
    def __init__(self, stream_id: str) -> None:
        self.name = f"summary:{stream_id}"
        self.stream_id = stream_id
        self.speakers: dict[str, _Speaker] = {}
        self.alerts: list[dict[str, Any]] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, event: Event) -> None:
        if isinstance(event, EmotionEvent):
            s = self.speakers.setdefault(event.speaker, _Speaker())
            s.talk_s += max(0.0, event.end_s - event.start_s)
            s.utterances += 1
            s.labels[event.label] += 1
            s.valence += event.valence
            s.arousal += event.arousal
            anger = event.scores.get("anger", 0.0)
            if s.peak_anger is None or anger > s.peak_anger["score"]:
                s.peak_anger = {"utterance_id": event.utterance_id, "start_s": event.start_s, "end_s": event.end_s,
                                "score": anger}
        elif isinstance(event, AlertEvent):
            self.alerts.append({"alert_id": event.alert_id, "rule": event.rule, "severity": event.severity,
                                "speaker": event.speaker, "at_s": event.at_s, "utterance_ids": event.utterance_ids})
            self.speakers.setdefault(event.speaker, _Speaker()).alerts.append(event.alert_id)

    def event(self, final: bool, audio_s: float) -> SummaryEvent:
        speakers = {}
        for name, s in self.speakers.items():
            if not s.utterances:  # an alert on a speaker not yet heard cannot happen; a summary stays valid anyway
                continue
            speakers[name] = {
                "talk_s": round(s.talk_s, 3),
                "utterances": s.utterances,
                "label_shares": {label: round(n / s.utterances, 4) for label, n in s.labels.most_common()},
                "mean_valence": round(s.valence / s.utterances, 4),
                "mean_arousal": round(s.arousal / s.utterances, 4),
                "peak_anger": s.peak_anger,
                "alerts": list(s.alerts),
            }
        return SummaryEvent(stream_id=self.stream_id, final=final, audio_s=round(audio_s, 3),
                            utterances=sum(s.utterances for s in self.speakers.values()), speakers=speakers,
                            alerts=list(self.alerts))
