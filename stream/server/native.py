"""The native WebSocket protocol at ``/v1/stream``, for robots and SDKs.

A connection sends one JSON start message (``stream/schemas/native_start.schema.json``), then binary frames of
interleaved samples, then optionally ``{"type": "stop"}`` to end the audio and wait for its last events. Every
function here raises only :class:`ProtocolError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from emostream.stream.events import SCHEMA_DIR
from emostream.stream.server.codecs import decode
from emostream.stream.server.protocol import INVALID_DATA, POLICY, ProtocolError


@dataclass(frozen=True)
class NativeStart:
    stream_id: str
    sample_rate: int
    encoding: str
    channels: int
    channel_names: tuple[str, ...]  # () when the client named none
    events: bool


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads((SCHEMA_DIR / "native_start.schema.json").read_text()))


def _json(frame: str | bytes) -> Any:
    try:
        return json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError(INVALID_DATA, "message is not valid JSON") from None


def parse_start(frame: str | bytes) -> NativeStart:
    """The first message; a schema violation is a 1007 naming the field."""
    data = _json(frame)
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "start message"
        raise ProtocolError(INVALID_DATA, f"invalid start: {where}: {e.message[:80]}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", data["stream_id"]):  # JSON Schema's $ lets a trailing newline by
        raise ProtocolError(INVALID_DATA, "invalid start: stream_id: letters, digits, _ . - only")
    channels = data.get("channels", 1)
    names = tuple(data.get("channel_names", ()))
    if names and len(names) != channels:
        raise ProtocolError(INVALID_DATA, f"invalid start: {len(names)} channel_names for {channels} channels")
    return NativeStart(data["stream_id"], data["sample_rate"], data["encoding"], channels, names,
                       data.get("events", False))


def is_stop(frame: str | bytes) -> bool:
    """A text frame after the start: ``{"type": "stop"}`` ends the audio; anything else is a 1008."""
    data = _json(frame)
    if isinstance(data, dict) and data.get("type") == "stop":
        return True
    raise ProtocolError(POLICY, 'after the start message only binary audio frames and {"type": "stop"} are allowed')


def audio(start: NativeStart, frame: bytes) -> np.ndarray:
    """A binary frame → a ``(channels, n)`` int16 block."""
    return decode(start.encoding, frame, start.channels)
