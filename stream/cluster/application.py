"""The Ray Serve applications of ``emo-stream serve --cluster``, built from the config's ``cluster`` section: the
calls' (one deployment per shared model, ``features`` only where the ASR's encodes cannot give them, the watcher,
and the call ingress that holds their handles) and the view's (``view.py``: the dashboard and ``/v1/streams``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application, Deployment

from emostream.models.bundle import read_meta
from emostream.stream.cluster.ingress import CallIngress, token_digests
from emostream.stream.cluster.models import AsrModel, FeaturesModel, InferenceModel, TextModel, why_features_not_shared
from emostream.stream.cluster.view import CallsView
from emostream.stream.cluster.watcher import CallWatcher
from emostream.stream.config import Config, DeploymentConfig, load_config
from emostream.stream.errors import UserError
from emostream.stream.server.auth import tokens_from_env
from emostream.stream.services.runtime import bundle_path

log = logging.getLogger("emo-stream")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}  # every model loads from its package
# Ray Serve's documented tuning (docs/cluster.md, "What runs where"), in every replica's environment: user code and
# the router of its handles on the replica's own event loop, not each on a second loop in a thread (every handler
# here hands blocking work to threads, and every handle call is awaited on that loop).
SERVE_TUNING = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0"}


def options(d: DeploymentConfig, max_ongoing: int) -> dict[str, Any]:
    """Ray Serve deployment options for one ``cluster.<name>`` block."""
    out: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": d.num_cpus, "num_gpus": d.num_gpus,
                              "runtime_env": {"env_vars": OFFLINE | SERVE_TUNING}},
        "max_ongoing_requests": max_ongoing,
        # Warnings and errors (a failed call, a lost replica) reach the log; not a line per request.
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
    }
    if d.max_replicas_per_node:
        out["max_replicas_per_node"] = d.max_replicas_per_node
    if d.min_replicas == d.max_replicas:
        out["num_replicas"] = d.min_replicas
    else:
        out["autoscaling_config"] = {"min_replicas": d.min_replicas, "max_replicas": d.max_replicas,
                                     "target_ongoing_requests": d.target_ongoing}
    return out


def build(cfg: Config, token_digests: tuple[bytes, ...]) -> Application:
    """The application; a config that cannot work on a cluster is refused here, before anything is deployed."""
    if cfg.publish.zmq.enabled:
        raise UserError("publish.zmq / --zmq: not with --cluster, where every ingress replica would bind the same "
                        "endpoint; publish to an MQTT broker (--mqtt) or to JSON Lines (--jsonl) instead")
    c = cfg.cluster

    def model(name: str, deployment: Deployment, d: DeploymentConfig) -> Application:
        # A model replica takes twice a batch at once, so that the next batch gathers while one runs.
        return deployment.options(name=name, **options(d, 2 * d.max_batch)).bind(cfg)

    unshared = why_features_not_shared(cfg, read_meta(bundle_path(cfg)).features)
    log.info("acoustic features: %s", f"the features deployment ({unshared})" if unshared
             else "the asr replicas' own encodes (no features deployment)")
    features = model("features", FeaturesModel, c.features) if unshared else None
    # One WebSocket is one request for its whole life: a replica takes at most server.max_calls of them.
    ingress = CallIngress.options(name="ingress", **options(c.ingress, cfg.server.max_calls))
    return ingress.bind(cfg, token_digests, CallWatcher.options(name="watcher").bind(cfg),
                        model("asr", AsrModel, c.asr), features, model("text", TextModel, c.text),
                        model("inference", InferenceModel, c.inference))


def build_view(cfg: Config, token_digests: tuple[bytes, ...]) -> Application:
    """The view's application: served at ``view.VIEW_PREFIX``, named ``view_name``, it finds the watcher in the
    calls' application (``cluster.app_name``)."""
    return CallsView.bind(cfg, token_digests)


def view_name(cfg: Config) -> str:
    return f"{cfg.cluster.app_name}-view"


def app_builder(args: dict[str, str]) -> Application:
    """The same application for a Serve config file or a KubeRay ``RayService`` (docs/cluster.md):
    ``import_path: emostream.stream.cluster.application:app_builder`` with ``args: {config: PATH}``; tokens come
    from ``EMO_STREAM_TOKENS`` in the runtime environment, listening from the Serve config's ``http_options``."""
    cfg = _config(args)
    return build(cfg, token_digests(tokens_from_env(cfg.server.require_token)))


def view_builder(args: dict[str, str]) -> Application:
    """The view's application for a Serve config, beside ``app_builder``'s with the same ``args``."""
    cfg = _config(args)
    return build_view(cfg, token_digests(tokens_from_env(cfg.server.require_token)))


def _config(args: dict[str, str]) -> Config:
    return load_config(Path(args["config"]) if args.get("config") else None)


def http_options(cfg: Config) -> serve.HTTPOptions:
    """Where every node's proxy listens: the server section's address and TLS files (which every node needs)."""
    s = cfg.server
    tls = {"ssl_certfile": s.tls_cert, "ssl_keyfile": s.tls_key} if s.tls_cert else {}
    return serve.HTTPOptions(host=s.host, port=s.port, location=cfg.cluster.proxy_location, **tls)
