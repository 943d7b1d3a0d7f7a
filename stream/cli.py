"""``emo-stream``: replay a recorded dialogue through the pipeline and publish one emotion event per utterance."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

from emostream.models.bundle import BundleError
from emostream.stream.audio import probe
from emostream.stream.config import Config, load_config, override
from emostream.stream.errors import UserError
from emostream.stream.pipeline import StreamReport, load_runtime, run_replay, stream_id_for
from emostream.stream.publishers import Publisher
from emostream.stream.publishers.jsonl import JsonLinesPublisher
from emostream.stream.publishers.mqtt import MqttPublisher
from emostream.stream.publishers.zeromq import ZmqPublisher

log = logging.getLogger("emo-stream")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emo-stream",
        description="Streaming emotion recognition: replays a dialogue, publishes one JSON event per utterance.",
    )
    p.add_argument("--replay", type=Path, metavar="FILE", required=True,
                   help="audio file to replay (WAV, FLAC, OGG; any rate; stereo = one speaker per channel)")
    p.add_argument("--config", type=Path, help="YAML config (see configs/default.yaml)")
    p.add_argument("--realtime", action="store_true", help="pace the file like a live source")
    p.add_argument("--stream-id", help="id used in events and topics (default: the file name)")
    p.add_argument("--channels", help="speaker names per channel, comma-separated (e.g. agent,customer)")
    p.add_argument("--bundle", help="model bundle directory (default: the shipped bundle)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-stdout", action="store_true", help="do not print events on stdout")
    p.add_argument("--jsonl", type=Path, metavar="FILE", help="append events to this JSON Lines file")
    p.add_argument("--zmq", metavar="ENDPOINT", help="publish on a ZeroMQ PUB socket bound here (tcp://host:port)")
    p.add_argument("--mqtt", metavar="HOST[:PORT]", help="publish to this MQTT broker (QoS 1)")
    p.add_argument("--mqtt-topic-prefix", help="MQTT/ZeroMQ topic prefix (default: emostream)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress and per-utterance details")
    return p


def apply_flags(cfg: Config, a: argparse.Namespace) -> Config:
    source = {"realtime": True} if a.realtime else {}
    if a.channels:
        source["channel_names"] = tuple(c.strip() for c in a.channels.split(","))
    model = {k: v for k, v in (("bundle", a.bundle), ("device", a.device)) if v}
    publish: dict = {}
    if a.no_stdout:
        publish["stdout"] = False
    if a.jsonl:
        publish["jsonl"] = str(a.jsonl)
    zmq = {"enabled": True, "endpoint": a.zmq} if a.zmq else {}
    mqtt: dict = {}
    if a.mqtt:
        host, _, port = a.mqtt.rpartition(":") if ":" in a.mqtt else (a.mqtt, "", "")
        if port and not port.isdigit():
            raise UserError(f"--mqtt {a.mqtt!r}: the port must be a number (HOST or HOST:PORT)")
        mqtt = {"enabled": True, "host": host} | ({"port": int(port)} if port else {})
    if a.mqtt_topic_prefix:
        mqtt["topic_prefix"] = a.mqtt_topic_prefix
    return override(cfg, source=source, model=model, publish=publish, **{"publish.zmq": zmq, "publish.mqtt": mqtt})


def publishers_for(cfg: Config, stream_id: str) -> list[Publisher]:
    out: list[Publisher] = []
    pc = cfg.publish
    if pc.stdout:
        out.append(JsonLinesPublisher(None))
    if pc.jsonl:
        out.append(JsonLinesPublisher(Path(pc.jsonl)))
    if pc.zmq.enabled:
        out.append(ZmqPublisher(pc.zmq, pc.mqtt.topic_prefix))
    if pc.mqtt.enabled:
        out.append(MqttPublisher(pc.mqtt, f"emo-stream-{stream_id}"))
    return out


async def run(a: argparse.Namespace) -> StreamReport:
    cfg = apply_flags(load_config(a.config), a)
    info = probe(a.replay)  # fail on a bad file before loading any model
    stream_id = a.stream_id or stream_id_for(a.replay)
    started: list[Publisher] = []
    try:
        for p in publishers_for(cfg, stream_id):  # connect before loading models: a bad bus fails fast
            await p.start()
            started.append(p)
        log.info("loading models")
        runtime = await asyncio.to_thread(load_runtime, cfg)
        log.info("replaying %s (%.1f s, %d Hz, %d channel(s))", info.path, info.duration_s, info.sample_rate,
                 info.channels)
        return await run_replay(info, stream_id, cfg, runtime, started)
    finally:
        errors = []
        for p in started:
            try:
                await p.close()
            except UserError as e:
                errors.append(e)
        if errors:
            raise errors[0]


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, stream=sys.stderr,
                        format="emo-stream: %(levelname)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every utterance at INFO
    try:
        report = asyncio.run(run(a))
    except (UserError, BundleError) as e:
        print(f"emo-stream: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        return 130
    with contextlib.suppress(BrokenPipeError):
        print(f"emo-stream: {report.summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
