"""``emo-stream serve``: one asyncio process that takes live calls over WebSockets and publishes their events
like ``--mic`` does (stdout, JSON Lines, ZeroMQ, MQTT). SIGINT/SIGTERM finalise every live call, then exit 0."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys

from aiohttp import web

from emostream.models.bundle import BundleError
from emostream.stream.config import Config, load_config
from emostream.stream.errors import UserError
from emostream.stream.flags import add_common_flags, apply_common_flags, on_signal, publishers_for
from emostream.stream.observe.alerts import check_rules
from emostream.stream.observe.dashboard import DashboardFeed
from emostream.stream.publishers import Publisher, close_all
from emostream.stream.server.app import AccessLogger, make_app, ssl_context
from emostream.stream.server.auth import TOKENS_ENV, tokens_from_env
from emostream.stream.server.calls import Calls
from emostream.stream.services.runtime import load_runtime

log = logging.getLogger("emo-stream")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emo-stream serve",
        description="Serve live calls over WebSockets: Twilio Media Streams at /twilio, the native protocol at "
                    f"/v1/stream. Tokens: the environment variable {TOKENS_ENV} (comma-separated).",
    )
    p.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default: server.port, 8080)")
    p.add_argument("--cluster", metavar="ADDRESS", nargs="?", const="",
                   help="run as a Ray Serve application on the Ray cluster at ray://HOST:PORT, HOST:PORT or auto "
                        "(alone: cluster.address of the config; needs the cluster extra, docs/cluster.md)")
    add_common_flags(p)
    return p


def config_for(a: argparse.Namespace) -> Config:
    server = {k: v for k, v in (("host", a.host), ("port", a.port)) if v is not None}
    return apply_common_flags(load_config(a.config), a, server=server,
                              cluster={"address": a.cluster} if a.cluster else {})  # alone: the config's


def serve_on_cluster(a: argparse.Namespace) -> int:
    """Ray is imported here only: a server without --cluster never loads it."""
    cfg = config_for(a)
    tokens = tokens_from_env(cfg.server.require_token)
    try:
        from emostream.stream.cluster.command import serve_cluster
    except ImportError as e:
        raise UserError(f"--cluster needs Ray Serve ({e}); install the cluster extra: bin/setup cluster, or "
                        "pip install 'emo-stream[cluster]'") from None
    return serve_cluster(cfg, tokens)


async def serve(a: argparse.Namespace) -> int:
    cfg = config_for(a)
    tokens = tokens_from_env(cfg.server.require_token)
    tls = ssl_context(cfg.server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, functools.partial(on_signal, stop, "the live calls", sig))
    started: list[Publisher] = []
    try:
        for p in publishers_for(cfg):  # connect before loading models: a bad bus fails fast
            await p.start()
            started.append(p)
        log.info("loading models")
        runtime = await asyncio.to_thread(load_runtime, cfg)
        try:
            check_rules(cfg.alerts.rules, runtime.bundle.meta.labels)
            feed = DashboardFeed()
            calls = Calls(cfg, runtime, [*started, feed], stop)
            runner = web.AppRunner(make_app(cfg, calls, tokens, feed), access_log_class=AccessLogger,
                                   handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, cfg.server.host, cfg.server.port, ssl_context=tls)
            try:
                await site.start()
            except OSError as e:
                raise UserError(f"cannot listen on {cfg.server.host}:{cfg.server.port} ({e.strerror}); "
                                "pick another --port or stop what holds it") from None
            scheme = "wss" if tls else "ws"
            print(f"emo-stream: serving {scheme}://{cfg.server.host}:{cfg.server.port}/twilio and /v1/stream, "
                  f"the dashboard at {'https' if tls else 'http'}://{cfg.server.host}:{cfg.server.port}/",
                  file=sys.stderr, flush=True)
            try:
                await stop.wait()
                await calls.drain()  # every live call is finalised and published before the sockets close
            finally:
                await runner.cleanup()
            log.info("%d calls ended, %d failed", calls.finished, calls.failed)
        finally:
            await runtime.close()
    finally:
        await close_all(started)
    return 0



def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, stream=sys.stderr,
                        format="emo-stream: %(levelname)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.INFO if a.verbose else logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return serve_on_cluster(a) if a.cluster is not None else asyncio.run(serve(a))
    except (UserError, BundleError) as e:
        print(f"emo-stream: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
