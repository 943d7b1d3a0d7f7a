"""Command-line flags shared by ``emo-stream`` (files, microphone) and ``emo-stream serve`` (network calls):
the config, the models and where events go. Both commands build their publishers here, so a flag means the same
thing in each."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from emostream.stream.config import Config, override
from emostream.stream.errors import UserError
from emostream.stream.publishers import Publisher
from emostream.stream.publishers.jsonl import JsonLinesPublisher
from emostream.stream.publishers.mqtt import MqttPublisher
from emostream.stream.publishers.zeromq import ZmqPublisher


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config (see configs/default.yaml)")
    p.add_argument("--bundle", help="a shipped bundle, 'default' or 'fast' (one encoder pass per utterance instead "
                                    "of two, less accurate on unseen voices), or a bundle "
                                    "directory (default: 'default')")
    p.add_argument("--model-device", help="where models run: auto, cpu, cuda or cuda:N")
    p.add_argument("--no-partials", action="store_true", help="do not publish partial transcripts")
    p.add_argument("--no-stdout", action="store_true", help="do not print events on stdout")
    p.add_argument("--jsonl", type=Path, metavar="FILE", help="append events to this JSON Lines file")
    p.add_argument("--zmq", metavar="ENDPOINT", help="publish on a ZeroMQ PUB socket bound here (tcp://host:port)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]", help="publish to this MQTT broker (QoS 1)")
    p.add_argument("--mqtt-topic-prefix", help="MQTT/ZeroMQ topic prefix (default: emostream)")
    p.add_argument("--prometheus-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")


def apply_common_flags(cfg: Config, a: argparse.Namespace, **sections: dict) -> Config:
    """``cfg`` with the shared flags applied (and any more ``sections``, validated in the same pass)."""
    model = {k: v for k, v in (("bundle", a.bundle), ("device", a.model_device)) if v}
    asr = {"partial_interval_ms": 0} if a.no_partials else {}
    publish: dict = {}
    if a.no_stdout:
        publish["stdout"] = False
    if a.jsonl:
        publish["jsonl"] = str(a.jsonl)
    zmq = {"enabled": True, "endpoint": a.zmq} if a.zmq else {}
    mqtt: dict = {}
    if a.mqtt:
        host, _, port = a.mqtt.rpartition(":") if ":" in a.mqtt else (a.mqtt, "", "")
        if not port.isdigit() and port:
            raise UserError(f"--mqtt {a.mqtt!r}: the port must be a number (HOST or HOST:PORT)")
        mqtt = {"enabled": True, "host": host} | ({"port": int(port)} if port else {})
    if a.mqtt_topic_prefix:
        mqtt["topic_prefix"] = a.mqtt_topic_prefix
    metrics = {"prometheus_port": a.prometheus_port} if a.prometheus_port is not None else {}
    return override(cfg, model=model, asr=asr, publish=publish, metrics=metrics,
                    **{"publish.zmq": zmq, "publish.mqtt": mqtt}, **sections)


def publishers_for(cfg: Config) -> list[Publisher]:
    out: list[Publisher] = []
    pc = cfg.publish
    if pc.stdout:
        out.append(JsonLinesPublisher(None))
    if pc.jsonl:
        out.append(JsonLinesPublisher(Path(pc.jsonl)))
    if pc.zmq.enabled:
        out.append(ZmqPublisher(pc.zmq, pc.mqtt.topic_prefix))
    if pc.mqtt.enabled:
        out.append(MqttPublisher(pc.mqtt, "emo-stream"))
    return out


def on_signal(stop: asyncio.Event, what: str, sig: signal.Signals) -> None:
    """First signal: set ``stop`` so the command finishes ``what`` (e.g. "the live calls") and exits 0.
    Second: exit now."""
    log = logging.getLogger("emostream.stream")
    if stop.is_set():
        log.warning("second %s: exiting without flushing", sig.name)
        os._exit(130)
    log.warning("%s: finishing %s (send again to exit at once)", sig.name, what)
    stop.set()
