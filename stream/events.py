"""What emo-stream publishes: versioned JSON events, one JSON Schema per type in ``schemas/``.

For one utterance the sequence is: ``partial`` (revision 1, 2, ... while it is spoken; may be skipped
under load) → ``emotion_estimate`` (audio only, at the endpoint) → ``emotion`` (fused, with the final
transcript). All three carry the same ``utterance_id``. ``metrics`` events come every few seconds per stream.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

SCHEMA_VERSION = 1
SCHEMA_DIR = Path(__file__).parent / "schemas"
EVENT_TYPES = ("partial", "emotion_estimate", "emotion", "metrics", "alert", "summary", "call_error")


@dataclass(frozen=True, kw_only=True)
class Event:
    stream_id: str
    emitted_at: float = 0.0  # Unix time in seconds, stamped when published
    schema_version: int = SCHEMA_VERSION
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def topic(self, prefix: str) -> str:
        """The bus topic ``<prefix>/<stream_id>/<type>``: the same string on MQTT and as ZeroMQ's first frame."""
        return f"{prefix}/{self.stream_id}/{self.type}"


@dataclass(frozen=True, kw_only=True)
class UtteranceEvent(Event):
    utterance_id: str
    seq: int
    channel: int
    speaker: str
    start_s: float
    end_s: float
    latency_ms: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class PartialEvent(UtteranceEvent):
    """A transcript while the utterance is still spoken. ``committed`` never changes once published
    (LocalAgreement-2); ``tentative`` may be revised by the next revision."""

    type: ClassVar[str] = "partial"
    revision: int
    committed: str
    tentative: str

    @property
    def text(self) -> str:
        return f"{self.committed} {self.tentative}".strip()

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"text": self.text}


@dataclass(frozen=True, kw_only=True)
class EmotionEvent(UtteranceEvent):
    """The fused result for an utterance, with its final transcript."""

    type: ClassVar[str] = "emotion"
    transcript: str
    label: str
    confidence: float
    scores: dict[str, float]
    modality_scores: dict[str, dict[str, float] | None]  # "audio", "text": that modality alone; None if absent
    valence: float
    arousal: float
    model_id: str
    split: bool  # the utterance was cut at the maximum length, not at a pause
    # Whisper's avg_logprob and no_speech_prob; speculated: decoded during the hangover from audio that lacks
    # the end of the post-roll (False: decoded from the utterance as the endpoint cut it)
    asr: dict[str, float | bool]


@dataclass(frozen=True, kw_only=True)
class EstimateEvent(UtteranceEvent):
    """The audio-only emotion, published at the endpoint before the transcript exists."""

    type: ClassVar[str] = "emotion_estimate"
    label: str
    confidence: float
    scores: dict[str, float]
    valence: float
    arousal: float
    model_id: str


@dataclass(frozen=True, kw_only=True)
class MetricsEvent(Event):
    type: ClassVar[str] = "metrics"
    window_s: float
    audio_s: float  # audio consumed since the stream started
    wall_s: float
    real_time_factor: float  # processing wall time per second of audio (< 1: keeping up)
    utterances: int
    latency_ms: dict[str, dict[str, float]]  # per stage: p50, p95, p99 over the recent window
    queue_depths: dict[str, int]
    dropped_partials: int
    input_overruns: int


@dataclass(frozen=True, kw_only=True)
class AlertEvent(Event):
    """A supervisor alert: a rule of the config matched a speaker's recent utterances (``observe/alerts.py``)."""

    type: ClassVar[str] = "alert"
    alert_id: str
    rule: str
    severity: str  # info | warning | critical
    speaker: str
    channel: int
    utterance_ids: list[str]  # the utterances that fired it, oldest first
    values: list[float]  # the rule's measure on each of them
    at_s: float  # end of the last of them, seconds into the stream
    message: str


@dataclass(frozen=True, kw_only=True)
class SummaryEvent(Event):
    """A call so far (``final`` false, served while it runs) or as it ended (``observe/summary.py``)."""

    type: ClassVar[str] = "summary"
    final: bool
    audio_s: float
    utterances: int
    speakers: dict[str, dict[str, Any]]  # talk_s, utterances, label_shares, mean_valence/arousal, peak_anger, alerts
    alerts: list[dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class CallErrorEvent(Event):
    """A call ended without its last events: what served it is gone (``emo-stream serve --cluster``: its ingress
    replica or node died, ``stream/cluster/watcher.py``). Utterances already published stand."""

    type: ClassVar[str] = "call_error"
    error: str  # a stable code: replica_lost
    message: str


def load_schema(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{event_type}.schema.json").read_text())


def validator(event_type: str) -> Any:
    """A JSON Schema validator for one event type, resolving the shared definitions offline."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = [load_schema(name) for name in ("common", *EVENT_TYPES)]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    return Draft202012Validator(load_schema(event_type), registry=registry)
