"""``emo-stream serve --cluster ADDRESS``: connects to a Ray cluster, deploys the application (``application.py``)
and keeps it until SIGINT/SIGTERM, then deletes it. The cluster itself is the operator's (``ray start``, KubeRay):
this command never starts or stops nodes."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading

import ray
from ray import serve

from emostream.models.bundle import read_meta
from emostream.stream.cluster.application import build, build_view, http_options, view_name
from emostream.stream.cluster.ingress import token_digests
from emostream.stream.cluster.view import VIEW_PREFIX
from emostream.stream.config import Config
from emostream.stream.errors import UserError
from emostream.stream.flags import on_signal
from emostream.stream.observe.alerts import check_rules
from emostream.stream.services.runtime import bundle_path

log = logging.getLogger("emo-stream")
REACH_TIMEOUT_S = 5.0


def connect(address: str) -> None:
    """``ray.init`` with a one-line error naming the address when no cluster answers there."""
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), REACH_TIMEOUT_S).close()
        except OSError as e:
            raise UserError(f"--cluster {address}: cannot reach {host}:{port} ({e.strerror or e}); check the address "
                            "and that `ray start --head` runs there (GCS port 6379, Ray Client port 10001)") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as e:
        hint = ("no Ray cluster runs on this machine; start one with `ray start --head` or give --cluster "
                "ray://HOST:10001" if address == "auto" else str(e).splitlines()[0])
        raise UserError(f"--cluster {address}: {hint}") from None


def serve_cluster(cfg: Config, tokens: tuple[bytes, ...]) -> int:
    check_rules(cfg.alerts.rules, read_meta(bundle_path(cfg)).labels)  # before touching the cluster
    if cfg.metrics.prometheus_port:
        raise UserError("metrics.prometheus_port / --prometheus-port: not used with --cluster, where Ray exports "
                        "every replica's metrics (docs/cluster.md); leave it at 0")
    digests = token_digests(tokens)
    app = build(cfg, digests)  # a config that cannot run on a cluster fails before connecting
    c = cfg.cluster
    connect(c.address)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs handlers of its own
        signal.signal(sig, lambda s, _: on_signal(stop, "the cluster application", signal.Signals(s)))
    try:
        serve.start(http_options=http_options(cfg))
        log.info("deploying %s to the Ray cluster at %s", c.app_name, c.address)
        serve.run(app, name=c.app_name, route_prefix="/", blocking=False)
        serve.run(build_view(cfg, digests), name=view_name(cfg), route_prefix=VIEW_PREFIX, blocking=False)
        scheme = "wss" if cfg.server.tls_cert else "ws"
        where = "every node" if c.proxy_location == "EveryNode" else "the head node"
        where_at = f"{cfg.server.host}:{cfg.server.port}"
        print(f"emo-stream: serving {scheme}://{where_at}/twilio and /v1/stream, and the dashboard of every call at "
              f"{'https' if cfg.server.tls_cert else 'http'}://{where_at}{VIEW_PREFIX}/, on {where} of the Ray "
              f"cluster at {c.address} (applications {c.app_name}, {view_name(cfg)})", file=sys.stderr, flush=True)
        stop.wait()
        log.warning("deleting application %s (live calls get cluster.ingress's graceful shutdown)", c.app_name)
        serve.delete(view_name(cfg))
        serve.delete(c.app_name)
    finally:
        ray.shutdown()
    return 0

