"""ZeroMQ PUB socket: two-frame messages ``[topic, json]``, so subscribers filter by topic prefix.

PUB never blocks: when a subscriber is slower than the stream and its queue reaches ``send_hwm``
messages, ZeroMQ drops further messages for that subscriber only (documented in the README), so a
stalled consumer costs at most ``send_hwm`` messages of memory and never stalls the pipeline.

With ``curve_secret_key_file`` the socket is a CURVE server: traffic is encrypted and only subscribers
that know the server's public key (the matching ``zmq.auth`` public certificate) complete the handshake.
"""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.asyncio
import zmq.auth

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
        if self.cfg.curve_secret_key_file:
            self._make_curve_server(sock)
        try:
            sock.bind(self.cfg.endpoint)
        except zmq.ZMQError as e:
            sock.close(0)
            raise UserError(
                f"cannot bind ZeroMQ endpoint {self.cfg.endpoint} ({e}); pick a free one with --zmq"
            ) from None
        self._sock = sock

    def _make_curve_server(self, sock: zmq.Socket) -> None:
        path = Path(self.cfg.curve_secret_key_file)
        try:
            public, secret = zmq.auth.load_certificate(path)
        except (OSError, ValueError) as e:
            sock.close(0)
            raise UserError(f"publish.zmq.curve_secret_key_file {path}: cannot load a CURVE secret certificate ({e}); "
                            "create one with zmq.auth.create_certificates") from None
        if not secret:
            sock.close(0)
            raise UserError(f"publish.zmq.curve_secret_key_file {path}: holds only a public key; give the "
                            "'.key_secret' file")
        if not zmq.has("curve"):
            sock.close(0)
            raise UserError("publish.zmq.curve_secret_key_file: this libzmq was built without CURVE support")
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    async def publish(self, event: EmotionEvent) -> None:
        assert self._sock is not None, "start() first"
        await self._sock.send_multipart([event.topic(self.prefix).encode(), event.to_json().encode()])

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()  # LINGER lets queued messages go out first
