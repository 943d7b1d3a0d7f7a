"""The dashboard and ``GET /v1/streams`` of the whole cluster: a second Ray Serve application, at ``VIEW_PREFIX``
on every proxy, answering from the watcher's view of every call (``watcher.py``, ``board.py``).

Not the call ingress's routes: Ray Serve counts every request to a replica against its ``max_ongoing_requests``,
which for the ingress is ``server.max_calls``, so an open dashboard would hold a call's place for as long as it
stays open, and a listing would wait for a free place while every replica is full of calls. A Serve application
has one ingress deployment and one route prefix, and the calls own ``/``; hence this application, beside the
watcher on the head. It serves the single-process server's page, token rule, same-origin rule, event stream and
response bodies (``stream/server/``), under its prefix: ``/view/``, ``/view/v1/events``, ``/view/v1/streams``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ray import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from emostream.stream.cluster.ingress import allowed
from emostream.stream.cluster.watcher import HEAD
from emostream.stream.config import Config
from emostream.stream.server.app import not_found
from emostream.stream.server.auth import CHALLENGE, REFUSED
from emostream.stream.server.dashboard import CROSS_ORIGIN, EVENTS_HEADERS, PAGE_HEADERS, page, same_origin

log = logging.getLogger("emo-stream.cluster")
VIEW_PREFIX = "/view"
Handler = Callable[[Request], Awaitable[Response]]


# Beside the watcher, whose event stream it relays; an open dashboard is one request for as long as it is open.
@serve.deployment(num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0, "resources": HEAD},
                  logging_config={"log_level": "WARNING", "enable_access_log": False})
@serve.ingress()
class CallsView:
    def __init__(self, cfg: Config, token_digests: tuple[bytes, ...]) -> None:
        self.digests = token_digests
        self.watcher = serve.get_deployment_handle("watcher", cfg.cluster.app_name)  # the calls' application

    def __serve_build_asgi_app__(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self._guarded(self._dashboard)),
            Route("/v1/events", self._guarded(self._events)),
            Route("/v1/streams", self._guarded(self._streams)),
            Route("/v1/streams/{stream_id}", self._guarded(self._summary)),
        ])

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if not allowed(request, self.digests):
                log.warning("refused %s %s: missing or wrong token", request.method, request.url.path)
                return PlainTextResponse(REFUSED, 401, headers=CHALLENGE)
            return await handler(request)

        return guarded

    async def _dashboard(self, _: Request) -> Response:
        return HTMLResponse(page(), headers=PAGE_HEADERS)

    async def _events(self, request: Request) -> Response:
        if not same_origin(request.headers.get("origin"), request.headers.get("host", "")):
            return PlainTextResponse(CROSS_ORIGIN, 403)
        return StreamingResponse(self._relay(), headers=EVENTS_HEADERS)

    async def _relay(self) -> AsyncIterator[bytes]:
        """The watcher's event stream, until the browser goes: Starlette then ends this, which cancels that."""
        chunks = self.watcher.options(stream=True).events.remote()
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            chunks.cancel()

    async def _streams(self, _: Request) -> Response:
        return JSONResponse(await self.watcher.streams.remote())

    async def _summary(self, request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        body = await self.watcher.summary.remote(stream_id)
        return PlainTextResponse(not_found(stream_id), 404) if body is None else JSONResponse(body)
