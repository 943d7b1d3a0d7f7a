"""The aiohttp application: token check, capacity, and one loop per WebSocket connection.

A connection's faults are its own: a malformed message closes that connection with the parser's close code and
reason (:class:`ProtocolError`); a client that vanishes, a ``stop`` message, an idle timeout or the server's
shutdown all end the call the same way: the audio received so far is finalised and published.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractAccessLogger

from emostream.stream.config import Config, ServerConfig
from emostream.stream.errors import UserError
from emostream.stream.events import SummaryEvent
from emostream.stream.observe.dashboard import DashboardFeed
from emostream.stream.server import auth, dashboard
from emostream.stream.server.calls import Calls, EndedCalls
from emostream.stream.server.ingest import Ingest, NativeIngest, TwilioIngest
from emostream.stream.server.protocol import GOING_AWAY, NORMAL, TRY_AGAIN_LATER, ProtocolError

log = logging.getLogger("emo-stream.server")
CALLS = web.AppKey("calls", Calls)
TOKENS = web.AppKey("tokens", tuple)


class AccessLogger(AbstractAccessLogger):
    """Method, path and status only: the query string (where a ``token`` may be) is never written."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.3fs", request.method, request.path, response.status, time)


@web.middleware
async def require_token(request: web.Request, handler: Callable) -> web.StreamResponse:
    if not auth.allowed(request, request.app[TOKENS]):
        log.warning("refused %s %s from %s: missing or wrong token", request.method, request.path, request.remote)
        raise web.HTTPUnauthorized(text=auth.REFUSED, headers=auth.CHALLENGE)
    return await handler(request)


def make_app(cfg: Config, calls: Calls, tokens: tuple[bytes, ...],
             feed: DashboardFeed | None = None) -> web.Application:
    """The routes; with ``feed`` (a publisher of the calls' events) also the dashboard at ``/``."""
    app = web.Application(middlewares=[require_token], client_max_size=cfg.server.max_message_bytes)
    app[CALLS], app[TOKENS] = calls, tokens
    if feed is not None:
        dashboard.add_routes(app, feed, calls.stop)
    app.router.add_get("/twilio", _handler(cfg, TwilioIngest))
    app.router.add_get("/v1/stream", _handler(cfg, NativeIngest))
    app.router.add_get("/v1/streams", list_streams)
    app.router.add_get("/v1/streams/{stream_id}", stream_summary)
    return app


class CallView(Protocol):
    """What ``GET /v1/streams`` reads: one server's ``Calls``, or the cluster's ``CallBoard`` (cluster/board.py)."""

    @property
    def live(self) -> Mapping[str, object]: ...

    @property
    def ended(self) -> EndedCalls: ...

    def summary(self, stream_id: str) -> SummaryEvent | None: ...


def listing(calls: CallView) -> dict[str, list[str]]:
    """The live calls, and those ended within server.summary_keep_s."""
    return {"live": sorted(calls.live), "ended": calls.ended.ids()}


def summary_body(calls: CallView, stream_id: str) -> dict[str, Any] | None:
    """A call's ``summary`` event: so far while it runs (``final`` false), then its final one; None: unknown."""
    summary = calls.summary(stream_id)
    return None if summary is None else replace(summary, emitted_at=round(time.time(), 3)).to_dict()


def not_found(stream_id: str) -> str:
    return f"no live or recently ended stream {stream_id!r}\n"


async def list_streams(request: web.Request) -> web.Response:
    return web.json_response(listing(request.app[CALLS]))


async def stream_summary(request: web.Request) -> web.Response:
    stream_id = request.match_info["stream_id"]
    body = summary_body(request.app[CALLS], stream_id)
    if body is None:
        raise web.HTTPNotFound(text=not_found(stream_id))
    return web.json_response(body)


def _handler(cfg: Config, kind: type[Ingest]) -> Callable:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        calls = request.app[CALLS]
        ws = web.WebSocketResponse(max_msg_size=cfg.server.max_message_bytes)
        await ws.prepare(request)
        if calls.stop.is_set():
            await ws.close(code=GOING_AWAY, message=b"server shutting down")
            return ws
        if not calls.acquire():
            log.warning("refused a connection to %s: %d calls live (server.max_calls)", request.path, calls.slots)
            await ws.close(code=TRY_AGAIN_LATER, message=b"server full")
            return ws
        try:
            await serve_connection(ws, kind(cfg, calls, ws), calls, cfg.server)
        finally:
            calls.release()
        return ws

    return handle


async def serve_connection(ws: web.WebSocketResponse, ingest: Ingest, calls: Calls, scfg: ServerConfig) -> None:
    """One connection from its first message to its close; also the cluster's ASGI ingress, through an adapter
    with the same few methods (``stream/cluster/socket.py``)."""
    code, reason = NORMAL, b"stream ended"
    stopping = asyncio.ensure_future(calls.stop.wait())
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive(timeout=scfg.idle_timeout_s))
            await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():  # SIGTERM: the call ends like a hang-up; the socket waits for its events
                code, reason = GOING_AWAY, b"server shutting down"
                await _finish(ingest)
                await ws.close(code=code, message=reason)  # wakes the pending receive with CLOSING
                await asyncio.gather(receive, return_exceptions=True)
                return
            msg = receive.result()
            if msg.type == WSMsgType.TEXT:
                ended = await ingest.text(msg.data)
            elif msg.type == WSMsgType.BINARY:
                ended = await ingest.binary(msg.data)
            else:  # CLOSE, CLOSING, CLOSED, ERROR (too big, broken connection): the client is gone
                if msg.type == WSMsgType.ERROR:
                    log.warning("stream %s: connection error: %s", ingest.stream_id or "?", msg.data)
                break
            if ended:
                break
    except ProtocolError as e:
        code, reason = e.code, e.close_reason
        log.warning("stream %s: closing the connection (%d): %s", ingest.stream_id or "(not started)", e.code,
                    e.reason)
    except TimeoutError:
        code, reason = GOING_AWAY, b"idle timeout"
        log.warning("stream %s: idle for %.0f s, closing", ingest.stream_id or "(not started)", scfg.idle_timeout_s)
    finally:
        stopping.cancel()
    await _finish(ingest)
    await ws.close(code=code, message=reason)


async def _finish(ingest: Ingest) -> None:
    """Ends the call's audio and waits until its last event is published (on the socket too while it is open)."""
    await ingest.finish()
    if ingest.task is not None:
        await asyncio.gather(ingest.task, return_exceptions=True)


def ssl_context(scfg: ServerConfig) -> ssl.SSLContext | None:
    if not scfg.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(scfg.tls_cert, scfg.tls_key)
    except (OSError, ssl.SSLError) as e:
        raise UserError(f"server.tls_cert / server.tls_key: cannot load ({e}); give PEM files that match") from None
    return ctx
