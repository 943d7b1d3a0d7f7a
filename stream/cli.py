"""``emo-stream``: listens to a microphone or replays recorded dialogues (several at once if asked) and
publishes partial transcripts, an early audio-only estimate and one fused emotion event per utterance."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from emostream.models.bundle import BundleError
from emostream.stream.config import Config, load_config
from emostream.stream.errors import UserError
from emostream.stream.flags import add_common_flags, apply_common_flags, on_signal, publishers_for
from emostream.stream.messages import AudioFrame, EndOfStream
from emostream.stream.observe.live_view import LiveView
from emostream.stream.observe.metrics import StreamMetrics
from emostream.stream.pipeline import StreamSpec, check_streams, run_streams
from emostream.stream.publishers import Publisher, close_all
from emostream.stream.services.runtime import load_runtime
from emostream.stream.sources.decode import probe
from emostream.stream.sources.microphone import CaptureStats, capture, list_devices, resolve_device
from emostream.stream.sources.replay import replay, stream_id_for

log = logging.getLogger("emo-stream")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="emo-stream",
        description="Streaming emotion recognition: replays dialogues, publishes one JSON event per utterance.",
    )
    p.add_argument("--replay", type=Path, metavar="FILE", action="append", default=[],
                   help="audio file to replay (WAV, FLAC, OGG; any rate; stereo = one speaker per channel); "
                        "repeat for several concurrent streams")
    p.add_argument("--mic", action="store_true", help="listen to a microphone (see --device) until Ctrl-C")
    p.add_argument("--device", help="microphone: index, name or unique part of a name (default: the system's)")
    p.add_argument("--list-devices", action="store_true", help="list the input devices and exit")
    p.add_argument("--view", action=argparse.BooleanOptionalAction, default=None,
                   help="live terminal view on stderr (default: on with --mic when stderr is a terminal)")
    p.add_argument("--realtime", action="store_true", help="pace files like live sources")
    p.add_argument("--stream-id", action="append", default=[],
                   help="id used in events and topics, one per --replay in order (default: the file name)")
    p.add_argument("--channels", help="speaker names per channel, comma-separated (e.g. agent,customer)")
    add_common_flags(p)  # config, models, publishers: shared with `emo-stream serve`
    return p


def apply_flags(cfg: Config, a: argparse.Namespace) -> Config:
    source: dict = {"realtime": True} if a.realtime else {}
    if a.channels:
        source["channel_names"] = tuple(c.strip() for c in a.channels.split(","))
    return apply_common_flags(cfg, a, source=source)


def stream_specs(a: argparse.Namespace, cfg: Config, stats: CaptureStats) -> list[StreamSpec]:
    """One stream per --replay file, in order, then the microphone; --stream-id names them in that order."""
    count = len(a.replay) + a.mic
    if len(a.stream_id) > count:
        raise UserError(f"{len(a.stream_id)} --stream-id given for {count} streams; give at most one per stream")
    specs = []
    for i, path in enumerate(a.replay):
        info = probe(path)  # fail on a bad file before loading any model
        stream_id = a.stream_id[i] if i < len(a.stream_id) else stream_id_for(path)
        source = functools.partial(replay, info, stream_id, cfg.vad.frame_samples, cfg.source.realtime)
        specs.append(StreamSpec(stream_id, source, str(path), channels=info.channels, live=cfg.source.realtime))
    if a.mic:
        device = int(a.device) if a.device and a.device.isdigit() else a.device
        channels = len(cfg.source.channel_names) or 1
        stream_id = a.stream_id[len(a.replay)] if len(a.stream_id) > len(a.replay) else "mic"
        resolve_device(device)  # a bad device fails before any model loads

        def listen(stop: asyncio.Event) -> AsyncIterator[AudioFrame | EndOfStream]:
            return capture(device, stream_id, cfg.vad.frame_samples, stop, stats, channels=channels)

        specs.append(StreamSpec(stream_id, listen, f"microphone {a.device or '(default)'}", channels=channels,
                                require_speech=False, input_overruns=lambda: stats.overruns + stats.dropped_frames))
    return specs


async def run(a: argparse.Namespace) -> dict[str, StreamMetrics | BaseException]:
    cfg = apply_flags(load_config(a.config), a)
    stats = CaptureStats()
    specs = stream_specs(a, cfg, stats)
    check_streams(specs, cfg)  # before connecting or loading anything
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, functools.partial(on_signal, stop, "the utterances in flight", sig))
    started: list[Publisher] = []
    publishers = publishers_for(cfg)
    if a.view if a.view is not None else (a.mic and sys.stderr.isatty()):
        publishers.append(LiveView(stats))
    try:
        for p in publishers:  # connect before loading models: a bad bus fails fast
            await p.start()
            started.append(p)
        log.info("loading models")
        runtime = await asyncio.to_thread(load_runtime, cfg)
        try:
            for s in specs:
                log.info("stream %s: %s", s.stream_id, s.description)
            return await run_streams(specs, cfg, runtime, started, stop)
        finally:
            await runtime.close()
    finally:
        await close_all(started)



def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # live calls over the network: stream/server/
        from emostream.stream.server.command import main as serve_main

        return serve_main(argv[1:])
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, stream=sys.stderr,
                        format="emo-stream: %(levelname)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every decode at INFO
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        if a.list_devices:
            print(list_devices())
            return 0
        if not a.replay and not a.mic:
            parser().error("give --mic or at least one --replay FILE")
        results = asyncio.run(run(a))
    except (UserError, BundleError) as e:
        print(f"emo-stream: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    code = 0
    for stream_id, result in results.items():
        if isinstance(result, UserError):
            print(f"emo-stream: error: {result}", file=sys.stderr)
            code = code or result.exit_code
        elif isinstance(result, BaseException):
            print(f"emo-stream: error: stream {stream_id} failed: {result!r}", file=sys.stderr)
            code = code or 1
        else:
            print(f"emo-stream: {result.summary()}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
