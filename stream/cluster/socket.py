"""An ASGI (Starlette) WebSocket behind the few aiohttp calls that the server's connection loop
(``server.app.serve_connection``) and ``WebSocketPublisher`` make, so that the cluster's ingress replicas run the
same protocol code as the single-process server instead of a copy of it."""

from __future__ import annotations

import asyncio

from aiohttp import WSMessage, WSMsgType
from starlette.websockets import WebSocket, WebSocketState

from emostream.stream.server.protocol import TOO_BIG, ProtocolError


class AsgiSocket:
    def __init__(self, ws: WebSocket, max_message_bytes: int) -> None:
        self.ws, self.max_message_bytes = ws, max_message_bytes

    @property
    def closed(self) -> bool:
        return WebSocketState.DISCONNECTED in (self.ws.client_state, self.ws.application_state)

    async def receive(self, timeout: float) -> WSMessage:
        """The next message as aiohttp's ``WSMessage``; TimeoutError after ``timeout`` s of silence."""
        if self.closed:
            return WSMessage(WSMsgType.CLOSED, None, None)
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg["type"] == "websocket.disconnect":
            return WSMessage(WSMsgType.CLOSE, msg.get("code"), None)
        kind, data = (WSMsgType.TEXT, msg["text"]) if msg.get("text") is not None else (WSMsgType.BINARY,
                                                                                        msg.get("bytes") or b"")
        if len(data) > self.max_message_bytes:  # aiohttp's max_msg_size, which the ASGI proxy does not apply
            raise ProtocolError(TOO_BIG, f"message of {len(data)} bytes is over server.max_message_bytes")
        return WSMessage(kind, data, None)

    async def send_str(self, data: str) -> None:
        await self.ws.send_text(data)

    async def close(self, code: int, message: bytes) -> None:
        if not self.closed:
            await self.ws.close(code, message.decode())
