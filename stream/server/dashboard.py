"""The live dashboard at ``/`` and its event stream at ``/v1/events`` (server-sent events): in one process here,
and in a cluster from the same page and event stream (``stream/cluster/view.py``).

The page is one HTML response with the vendored Chart.js and the dashboard script inlined, so the token in its URL
(``/?token=...``) is needed once, and the event stream is opened with the same token. ``/v1/events`` only serves
its own origin: a page elsewhere that a supervisor happens to open cannot read the calls through their browser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from emostream.stream.observe.dashboard import DashboardFeed

STATIC = Path(__file__).with_name("static")
FEED = web.AppKey("feed", DashboardFeed)
STOP = web.AppKey("stop", asyncio.Event)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
KEEPALIVE = b": keep-alive\n\n"
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
EVENTS_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
CROSS_ORIGIN = "cross-origin requests are not served\n"


@cache
def page() -> str:
    html = (STATIC / "dashboard.html").read_text()
    chart = (STATIC / "vendor" / "chart.min.js").read_text()
    script = (STATIC / "dashboard.js").read_text()
    return html.replace("/*CHART_JS*/", chart, 1).replace("/*DASHBOARD_JS*/", script, 1)


async def index(request: web.Request) -> web.Response:
    return web.Response(text=page(), content_type="text/html", headers=PAGE_HEADERS)


def same_origin(origin: str | None, host: str) -> bool:
    """No Origin header (a same-origin EventSource, curl) or one naming this very host. Plain strings, so that the
    aiohttp server and the cluster's ASGI ingress decide alike."""
    return origin is None or urlsplit(origin).netloc == host


async def events(request: web.Request) -> web.StreamResponse:
    if not same_origin(request.headers.get("Origin"), request.host):
        raise web.HTTPForbidden(text=CROSS_ORIGIN)
    response = web.StreamResponse(headers=EVENTS_HEADERS)
    await response.prepare(request)
    async with aclosing(event_stream(request.app[FEED], request.app[STOP])) as chunks:
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except ConnectionError:  # the browser went away
            pass
    return response


async def event_stream(feed: DashboardFeed, stop: asyncio.Event) -> AsyncIterator[bytes]:
    """The body of ``/v1/events`` until ``stop``: the feed's recent events, then each new one, and a comment line
    when there is nothing to say (also first, so that a proxy passes the response on at once). Also what the
    cluster's watcher streams to its view application (``stream/cluster/watcher.py``, ``view.py``)."""
    queue, recent = feed.watch()
    stopping = asyncio.ensure_future(stop.wait())
    get: asyncio.Future[dict] | None = None
    try:
        yield KEEPALIVE
        for data in recent:
            yield _message(data)
        while not stop.is_set():
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, stopping}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                yield _message(get.result())
            else:
                get.cancel()
                yield KEEPALIVE
    finally:
        stopping.cancel()
        if get is not None:
            get.cancel()
        feed.unwatch(queue)


def _message(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def add_routes(app: web.Application, feed: DashboardFeed, stop: asyncio.Event) -> None:
    app[FEED], app[STOP] = feed, stop
    app.router.add_get("/", index)
    app.router.add_get("/v1/events", events)
