"""Twilio Media Streams, as Twilio documents the WebSocket messages: ``connected``, ``start``, ``media``, ``mark``,
``dtmf``, ``stop`` (JSON text frames; audio is base64 mu-law at 8 kHz in 20 ms chunks).

:func:`parse` turns one frame into a typed message; :class:`TwilioCall` holds one connection's state and turns
``media`` messages into ``(channels, n)`` blocks, the inbound track on channel 0 and the outbound one on channel 1,
aligned by Twilio's per-track ``timestamp`` (milliseconds since the stream started). Both raise only
:class:`ProtocolError`, whose close code and reason end that connection alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

import numpy as np

from emostream.stream.server.codecs import ULAW
from emostream.stream.server.protocol import INVALID_DATA, POLICY, ProtocolError

SAMPLE_RATE = 8000
TRACKS = ("inbound", "outbound")
MAX_GAP_MS = 1000  # a timestamp jump up to this is lost packets (filled with silence); beyond, it is ignored
MAX_SKEW_S = 0.5  # a track that falls this far behind the other is padded with silence, so the other goes on


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    track: str
    chunk: int
    timestamp_ms: int
    samples: np.ndarray  # int16 at 8 kHz


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Other:
    """``connected``, ``mark``, ``dtmf``: acknowledged, no audio."""

    event: str


Message = Start | Media | Stop | Other


def _field(obj: dict, key: str, kind: type, where: str) -> object:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(INVALID_DATA, f"twilio {where}: {key!r} missing or not a {kind.__name__}")
    return value


def _number(obj: dict, key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 16:
        return int(value)
    raise ProtocolError(INVALID_DATA, f"twilio {where}: {key!r} missing or not a number")


def parse(frame: str | bytes) -> Message:
    """One WebSocket frame → a message; anything malformed is a ProtocolError (1007) naming what is wrong."""
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError(INVALID_DATA, "twilio: message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(INVALID_DATA, "twilio: message is not a JSON object")
    event = data.get("event")
    if event == "media":
        media = _field(data, "media", dict, "media")
        assert isinstance(media, dict)
        track = media.get("track", "inbound")
        if track not in TRACKS:
            raise ProtocolError(INVALID_DATA, f"twilio media: unknown track {str(track)[:20]!r}")
        payload = _field(media, "payload", str, "media")
        assert isinstance(payload, str)
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(INVALID_DATA, "twilio media: payload is not valid base64") from None
        return Media(track, _number(media, "chunk", "media"), _number(media, "timestamp", "media"),
                     ULAW[np.frombuffer(raw, dtype=np.uint8)])
    if event == "start":
        start = _field(data, "start", dict, "start")
        assert isinstance(start, dict)
        fmt = start.get("mediaFormat", {})
        if not isinstance(fmt, dict):
            raise ProtocolError(INVALID_DATA, "twilio start: 'mediaFormat' is not an object")
        encoding, rate = fmt.get("encoding", "audio/x-mulaw"), fmt.get("sampleRate", SAMPLE_RATE)
        if encoding != "audio/x-mulaw" or rate != SAMPLE_RATE or fmt.get("channels", 1) != 1:
            raise ProtocolError(INVALID_DATA, "twilio start: mediaFormat must be audio/x-mulaw, 8000 Hz, 1 channel")
        tracks = start.get("tracks", ["inbound"])
        if not isinstance(tracks, list) or not tracks or any(t not in TRACKS for t in tracks) \
                or len(set(tracks)) != len(tracks):
            raise ProtocolError(INVALID_DATA, "twilio start: 'tracks' must list inbound and/or outbound")
        custom = start.get("customParameters", {})
        if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
            raise ProtocolError(INVALID_DATA, "twilio start: 'customParameters' must map names to strings")
        stream_sid = _field(start, "streamSid", str, "start")
        call_sid = _field(start, "callSid", str, "start")
        assert isinstance(stream_sid, str) and isinstance(call_sid, str)
        order = tuple(t for t in TRACKS if t in tracks)
        return Start(stream_sid, call_sid, order, dict(custom))
    if event == "stop":
        return Stop()
    if event in ("connected", "mark", "dtmf"):
        return Other(event)
    raise ProtocolError(INVALID_DATA, f"twilio: unknown event {str(event)[:20]!r}")


def stream_id_for(start: Start) -> str:
    """``customParameters.stream_id`` if given, else the call SID; made topic-safe (no + # / in MQTT topics)."""
    wanted = start.custom.get("stream_id") or start.call_sid or start.stream_sid
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", wanted)[:64]
    if not safe.strip("_"):
        raise ProtocolError(INVALID_DATA, "twilio start: the stream id is empty once made topic-safe")
    return safe


class TwilioCall:
    """One connection's state: ``start`` first, then ``media`` becomes aligned multi-channel blocks."""

    def __init__(self) -> None:
        self.start: Start | None = None
        self._tracks: dict[str, list[np.ndarray]] = {}
        self._heads: dict[str, int] = {}  # samples written per track since the stream started
        self._emitted = 0

    @property
    def channels(self) -> int:
        return len(self.start.tracks) if self.start else 0

    def feed(self, msg: Message) -> np.ndarray | None:
        """A message in; a ``(channels, n)`` int16 block out when audio of every track is ready."""
        if isinstance(msg, Start):
            if self.start is not None:
                raise ProtocolError(POLICY, "twilio: a second 'start' on the same connection")
            self.start = msg
            self._tracks = {t: [] for t in msg.tracks}
            self._heads = dict.fromkeys(msg.tracks, 0)
            return None
        if not isinstance(msg, Media):
            return None
        if self.start is None:
            raise ProtocolError(POLICY, "twilio: 'media' before 'start'")
        if msg.track not in self._tracks:
            raise ProtocolError(POLICY, f"twilio: media on track {msg.track!r}, not in the start's tracks")
        self._write(msg)
        return self._drain(flush=False)

    def flush(self) -> np.ndarray | None:
        """What is left at the end of the call, the shorter tracks padded with silence."""
        return self._drain(flush=True) if self.start else None

    def _write(self, msg: Media) -> None:
        at = msg.timestamp_ms * SAMPLE_RATE // 1000
        head = self._heads[msg.track]
        samples = msg.samples
        delta, window = at - head, MAX_GAP_MS * SAMPLE_RATE // 1000
        if 0 < delta <= window:  # lost packets: keep the clock with silence
            samples = np.concatenate([np.zeros(delta, np.int16), samples])
        elif -window <= delta < 0:  # a repeat, or late audio already replaced by silence: keep only what is new
            samples = samples[-delta:]
        # a larger jump either way is a clock we cannot trust: the audio is appended as it comes
        self._tracks[msg.track].append(samples)
        self._heads[msg.track] = head + len(samples)

    def _drain(self, flush: bool) -> np.ndarray | None:
        heads = self._heads.values()
        lead = max(heads)
        ready = lead if flush else max(min(heads), lead - int(MAX_SKEW_S * SAMPLE_RATE))
        n = ready - self._emitted
        if n <= 0:
            return None
        rows = []
        for track in self.start.tracks if self.start else ():
            have = np.concatenate(self._tracks[track]) if self._tracks[track] else np.zeros(0, np.int16)
            if len(have) < n:  # a lagging track: silence where it sent nothing yet
                self._heads[track] += n - len(have)
                have = np.concatenate([have, np.zeros(n - len(have), np.int16)])
            rows.append(have[:n])
            self._tracks[track] = [have[n:]] if len(have) > n else []
        self._emitted = ready
        return np.stack(rows)
