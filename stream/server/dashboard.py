"""The live dashboard at ``/`` and its event stream at ``/v1/events`` (server-sent events), same process.

The page is one HTML response with the vendored Chart.js and the dashboard script inlined, so the token in its URL
(``/?token=...``) is needed once, and the event stream is opened with the same token. ``/v1/events`` only serves
its own origin: a page elsewhere that a supervisor happens to open cannot read the calls through their browser.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from emostream.stream.observe.dashboard import DashboardFeed

STATIC = Path(__file__).with_name("static")
FEED = web.AppKey("feed", DashboardFeed)
STOP = web.AppKey("stop", asyncio.Event)
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream


@cache
def page() -> str:
    html = (STATIC / "dashboard.html").read_text()
    chart = (STATIC / "vendor" / "chart.min.js").read_text()
    script = (STATIC / "dashboard.js").read_text()
    return html.replace("/*CHART_JS*/", chart, 1).replace("/*DASHBOARD_JS*/", script, 1)


async def index(request: web.Request) -> web.Response:
    return web.Response(text=page(), content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Frame-Options": "DENY"})


def same_origin(request: web.Request) -> bool:
    """No Origin header (a same-origin EventSource, curl) or one naming this very host."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def events(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        raise web.HTTPForbidden(text="cross-origin requests are not served\n")
    feed, stop = request.app[FEED], request.app[STOP]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    queue, recent = feed.watch()
    stopping = asyncio.ensure_future(stop.wait())
    try:
        for data in recent:
            await response.write(_message(data))
        while not stop.is_set():
            get = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({get, stopping}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(_message(get.result()))
    except ConnectionError:  # the browser went away
        pass
    finally:
        stopping.cancel()
        feed.unwatch(queue)
    return response


def _message(data: dict) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def add_routes(app: web.Application, feed: DashboardFeed, stop: asyncio.Event) -> None:
    app[FEED], app[STOP] = feed, stop
    app.router.add_get("/", index)
    app.router.add_get("/v1/events", events)
