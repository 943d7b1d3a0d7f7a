"""ZeroMQ PUB socket: two-frame messages ``[topic, json]``, so subscribers filter by topic prefix.

PUB never blocks: when a subscriber is slower than the stream and its queue reaches ``send_hwm``
messages, ZeroMQ drops further messages for that subscriber only (documented in the README).
"""

from __future__ import annotations

import zmq
import zmq.asyncio

from emostream.stream.config import ZmqConfig
from emostream.stream.errors import UserError
from emostream.stream.events import EmotionEvent


class ZmqPublisher:
    def __init__(self, cfg: ZmqConfig, topic_prefix: str) -> None:
        self.name = f"zmq:{cfg.endpoint}"
        self.cfg = cfg
        self.prefix = topic_prefix
        self._ctx = zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = None

    async def start(self) -> None:
        sock = self._ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, self.cfg.send_hwm)
        sock.setsockopt(zmq.LINGER, 2000)
        try:
            sock.bind(self.cfg.endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise UserError(
                f"cannot bind ZeroMQ endpoint {self.cfg.endpoint} ({e}); pick a free one with --zmq"
            ) from None
        self._sock = sock

    async def publish(self, event: EmotionEvent) -> None:
        assert self._sock is not None, "start() first"
        await self._sock.send_multipart([event.topic(self.prefix).encode(), event.to_json().encode()])

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()  # LINGER lets queued messages go out first
