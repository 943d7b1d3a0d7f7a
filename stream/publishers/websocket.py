"""A stream's events sent back on the WebSocket that carries its audio (the native protocol's ``events: true``).

Per connection, beside the process's publishers. The bus is the record: a client that has gone, or that reads
too slowly to take an event within ``send_timeout_s``, loses events on its socket only; the stream never waits
for it longer than that and never fails because of it.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from emostream.stream.events import Event

log = logging.getLogger(__name__)


class WebSocketPublisher:
    def __init__(self, ws: web.WebSocketResponse, stream_id: str, send_timeout_s: float = 2.0) -> None:
        self.name = f"websocket:{stream_id}"
        self.ws, self.send_timeout_s = ws, send_timeout_s
        self.dropped = 0

    async def start(self) -> None:
        pass

    async def publish(self, event: Event) -> None:
        if self.ws.closed:
            self.dropped += 1
            return
        try:
            await asyncio.wait_for(self.ws.send_str(event.to_json()), self.send_timeout_s)
        except (ConnectionError, TimeoutError, RuntimeError) as e:  # RuntimeError: aiohttp's "closing" socket
            self.dropped += 1
            log.info("%s: event not sent (%s)", self.name, type(e).__name__)

    async def close(self) -> None:
        pass
