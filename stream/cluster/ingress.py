"""The call ingress: WebSocket endpoints (``/twilio``, ``/v1/stream``) as a Ray Serve deployment behind the proxy
of every node. A WebSocket is one ASGI request, so Ray Serve keeps a call on the replica that accepted it from
its first frame to its last: its dialogue context, speaker turns and alerts stay in one place. (The dashboard and
``GET /v1/streams`` are another application's, ``view.py``.)

The connection loop, protocol parsers and call handling are the single-process server's (``stream/server/``),
with the replica's own ``Calls`` (``server.max_calls`` per replica) and the config's publishers. Tokens are
checked here, at the ingress; the replica holds only their SHA-256 digests, never the tokens themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from emostream.stream.cluster.report import Reporter
from emostream.stream.cluster.runtime import cluster_runtime
from emostream.stream.cluster.socket import AsgiSocket
from emostream.stream.config import Config
from emostream.stream.events import SummaryEvent
from emostream.stream.flags import publishers_for
from emostream.stream.observe.metrics import StreamMetrics
from emostream.stream.pipeline import StreamSpec
from emostream.stream.publishers import Publisher, close_all
from emostream.stream.server.app import serve_connection
from emostream.stream.server.auth import presented, token_ok
from emostream.stream.server.calls import Calls
from emostream.stream.server.ingest import Ingest, NativeIngest, TwilioIngest
from emostream.stream.server.protocol import POLICY, TRY_AGAIN_LATER
from emostream.stream.services.runtime import Runtime

log = logging.getLogger("emo-stream.cluster")
REPLICA_HEADER = "X-Emo-Stream-Replica"  # <replica id>@<node id>


def digest(token: str) -> str:
    """What an ingress replica keeps of a token, and compares a presented token by."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_digests(tokens: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tuple(digest(t.decode()).encode() for t in tokens)


def allowed(conn: HTTPConnection, digests: tuple[bytes, ...]) -> bool:
    """The single-process server's token rule (``server/auth.py``), for a WebSocket or an HTTP request."""
    given = presented(conn.headers.get("authorization", ""), conn.query_params.get("token", ""))
    return token_ok(digest(given), digests)


class ReportedCalls(Calls):
    """This replica's calls, reported to the watcher (``report.py``, ``watcher.py``): their events as they are
    published, and at once when one starts or ends."""

    def __init__(self, cfg: Config, runtime: Runtime, publishers: list[Publisher], watcher: DeploymentHandle,
                 replica: str) -> None:
        self.reporter = Reporter(watcher, replica, self.live_summaries)
        # The stop event is never set: Ray Serve ends the replica.
        super().__init__(cfg, runtime, [*publishers, self.reporter], asyncio.Event())

    def start(self, spec: StreamSpec, extra: Sequence[Publisher] = ()) -> asyncio.Task[StreamMetrics]:
        task = super().start(spec, extra)
        self.reporter.wake()
        task.add_done_callback(lambda _: self.reporter.wake())
        return task

    def live_summaries(self) -> dict[str, SummaryEvent]:
        return {stream_id: self.live_summary(stream_id) for stream_id in self.pipelines}


@serve.deployment
@serve.ingress()
class CallIngress:
    def __init__(self, cfg: Config, token_digests: tuple[bytes, ...], watcher: DeploymentHandle,
                 asr: DeploymentHandle, features: DeploymentHandle | None, text: DeploymentHandle,
                 inference: DeploymentHandle) -> None:
        self.cfg, self.digests = cfg, token_digests
        self.publishers = publishers_for(cfg)
        runtime = cluster_runtime(cfg, asr, features, text, inference)
        context = ray.get_runtime_context()
        self.calls = ReportedCalls(cfg, runtime, self.publishers, watcher, context.get_actor_name())
        self.where = f"{serve.get_replica_context().replica_id.unique_id}@{context.get_node_id()}"

    def __serve_build_asgi_app__(self) -> Starlette:
        return Starlette(routes=[
            WebSocketRoute("/twilio", self._endpoint(TwilioIngest)),
            WebSocketRoute("/v1/stream", self._endpoint(NativeIngest)),
        ], lifespan=self._lifespan)

    @asynccontextmanager
    async def _lifespan(self, _: Starlette) -> AsyncIterator[None]:
        started: list[Publisher] = []
        try:
            for p in [*self.publishers, self.calls.reporter]:
                await p.start()
                started.append(p)
            yield
        finally:
            await close_all(started)

    def _endpoint(self, kind: type[Ingest]) -> Callable[[WebSocket], Awaitable[None]]:
        async def handle(websocket: WebSocket) -> None:
            if not allowed(websocket, self.digests):
                log.warning("refused %s: missing or wrong token", websocket.url.path)
                await websocket.close(POLICY)  # before the handshake completes: the client sees HTTP 403
                return
            # Which replica (and node) took the call, in the handshake's response: for operators and tests.
            await websocket.accept(headers=[(REPLICA_HEADER.encode(), self.where.encode())])
            ws = AsgiSocket(websocket, self.cfg.server.max_message_bytes)
            if not self.calls.acquire():
                log.warning("refused a connection to %s: %d calls live (server.max_calls)", websocket.url.path,
                            self.calls.slots)
                await ws.close(TRY_AGAIN_LATER, b"server full")
                return
            try:
                await serve_connection(ws, kind(self.cfg, self.calls, ws), self.calls, self.cfg.server)
            finally:
                self.calls.release()

        return handle
