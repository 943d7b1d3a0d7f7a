"""The published emotion event: one per utterance, JSON, versioned; its JSON Schema ships beside this module."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_DIR = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class EmotionEvent:
    stream_id: str
    utterance_id: str
    seq: int
    channel: int
    speaker: str
    start_s: float
    end_s: float
    transcript: str
    label: str
    confidence: float
    scores: dict[str, float]
    modality_scores: dict[str, dict[str, float] | None]  # "audio", "text": that modality alone; None if absent
    valence: float
    arousal: float
    model_id: str
    split: bool  # the utterance was cut at the maximum length, not at a pause
    asr: dict[str, float]  # Whisper's avg_logprob and no_speech_prob
    latency_ms: dict[str, float]
    emitted_at: float  # Unix time, seconds
    type: str = "emotion"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def topic(self, prefix: str) -> str:
        """The bus topic: ``<prefix>/<stream_id>/emotion`` (the same string on MQTT and as the ZeroMQ frame)."""
        return f"{prefix}/{self.stream_id}/{self.type}"


def load_schema(name: str = "emotion") -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
