"""The one error a protocol parser may raise: it names the WebSocket close code and reason for that connection."""

from __future__ import annotations

# RFC 6455 close codes used by the server.
NORMAL = 1000
GOING_AWAY = 1001  # server shutting down, idle timeout
INVALID_DATA = 1007  # a message whose content is malformed (bad JSON, bad base64, bad audio length)
POLICY = 1008  # a message out of order (audio before start) or not allowed (stream id in use)
TOO_BIG = 1009
TRY_AGAIN_LATER = 1013  # server full

MAX_REASON_BYTES = 123  # a close frame's reason is at most 123 bytes of UTF-8


class ProtocolError(Exception):
    """A client broke the protocol: its connection is closed with ``code`` and ``reason``; others are untouched."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    @property
    def close_reason(self) -> bytes:
        """The reason as a close frame can carry it (cut to 123 bytes at a character boundary)."""
        return self.reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore").encode()
