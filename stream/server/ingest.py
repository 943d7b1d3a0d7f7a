"""Per-connection glue between a protocol parser and a live call: it starts the call when the protocol's start
message arrives and pushes decoded audio into the call's :class:`NetworkSource`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from emostream.stream.config import Config
from emostream.stream.observe.metrics import StreamMetrics
from emostream.stream.pipeline import StreamSpec
from emostream.stream.publishers.websocket import WebSocketPublisher
from emostream.stream.server import native, twilio
from emostream.stream.server.calls import Calls
from emostream.stream.server.protocol import INVALID_DATA, POLICY, ProtocolError
from emostream.stream.sources.network import NetworkSource


class Ingest:
    """What the connection loop drives: ``text``/``binary`` return True when the client ended its audio."""

    def __init__(self, cfg: Config, calls: Calls, ws: web.WebSocketResponse) -> None:
        self.cfg, self.calls, self.ws = cfg, calls, ws
        self.source: NetworkSource | None = None
        self.task: asyncio.Task[StreamMetrics] | None = None
        self.stream_id = ""

    def _start(self, stream_id: str, channels: int, rate: int, names: tuple[str, ...], events: bool,
               description: str) -> None:
        self.source = NetworkSource(stream_id, channels, rate, self.cfg.vad.frame_samples,
                                    queue_blocks=self.cfg.source.queue_size)
        spec = StreamSpec(stream_id, self.source, description, channels=channels, require_speech=False,
                          live=True, channel_names=names or None)
        extra = [WebSocketPublisher(self.ws, stream_id)] if events else []
        self.task = self.calls.start(spec, extra)
        self.stream_id = stream_id

    async def text(self, data: str) -> bool:
        raise NotImplementedError

    async def binary(self, data: bytes) -> bool:
        raise NotImplementedError

    async def finish(self) -> None:
        """The connection's audio is over (stop message, hang-up, error): what was received is finalised."""
        if self.source is not None:
            self.source.end()


class TwilioIngest(Ingest):
    def __init__(self, cfg: Config, calls: Calls, ws: web.WebSocketResponse) -> None:
        super().__init__(cfg, calls, ws)
        self.call = twilio.TwilioCall()

    async def text(self, data: str) -> bool:
        msg = twilio.parse(data)
        block = self.call.feed(msg)
        if isinstance(msg, twilio.Start):
            roles = self.cfg.server.twilio_roles
            names = tuple(roles[twilio.TRACKS.index(t)] for t in msg.tracks)
            self._start(twilio.stream_id_for(msg), len(msg.tracks), twilio.SAMPLE_RATE, names, False,
                        f"twilio call {msg.call_sid[:40]}")
        if block is not None and self.source is not None:
            await self.source.push(block)
        return isinstance(msg, twilio.Stop)

    async def binary(self, data: bytes) -> bool:
        raise ProtocolError(INVALID_DATA, "twilio media streams send JSON text frames, not binary ones")

    async def finish(self) -> None:
        if self.source is not None and (tail := self.call.flush()) is not None:
            await self.source.push(tail)
        await super().finish()


class NativeIngest(Ingest):
    def __init__(self, cfg: Config, calls: Calls, ws: web.WebSocketResponse) -> None:
        super().__init__(cfg, calls, ws)
        self.start: native.NativeStart | None = None

    async def text(self, data: str) -> bool:
        if self.start is None:
            self.start = s = native.parse_start(data)
            self._start(s.stream_id, s.channels, s.sample_rate, s.channel_names, s.events,
                        f"native stream {s.stream_id}")
            return False
        return native.is_stop(data)

    async def binary(self, data: bytes) -> bool:
        if self.start is None or self.source is None:
            raise ProtocolError(POLICY, "audio before the start message")
        await self.source.push(native.audio(self.start, data))
        return False
