"""What runs inside one bench subprocess: N streams of one configuration, or Whisper alone on cut turns."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emostream.stream.tools.bench.configs import CONFIGS
from emostream.stream.tools.bench.encoder_cost import encoder_job
from emostream.stream.tools.bench.scoring import word_error_rate


class Recorder:
    """An in-memory publisher: every event with the monotonic time it was handed over."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[tuple[float, dict]] = []

    async def start(self) -> None:
        pass

    async def publish(self, event: Any) -> None:
        self.events.append((time.monotonic(), event.to_dict()))

    async def close(self) -> None:
        pass


@dataclass
class SourceClock:
    """When a paced source started, and how far behind its schedule back-pressure ever held it."""

    t0: float = 0.0
    lag_s: float = 0.0


def timed_source(path: Path, stream_id: str, frame_samples: int, realtime: bool, clock: SourceClock) -> Callable:
    """The CLI's replay source, watched: a frame yielded later than its schedule means the pipeline held it back."""
    from emostream.stream.messages import AudioFrame
    from emostream.stream.sources.decode import probe
    from emostream.stream.sources.replay import replay
    from emostream.stream.stages.vad import SAMPLE_RATE

    info, frame_s = probe(path), frame_samples / SAMPLE_RATE

    async def source(stop: asyncio.Event) -> AsyncIterator:
        clock.t0 = time.monotonic()
        async for msg in replay(info, stream_id, frame_samples, realtime, stop):
            if realtime and isinstance(msg, AudioFrame) and msg.channel == 0:
                clock.lag_s = max(clock.lag_s, msg.wall - (clock.t0 + (msg.index + 1) * frame_s))
            yield msg

    return source


def bench_config(name: str, realtime: bool, channel_names: tuple[str, ...] = ()) -> Any:
    """``channel_names`` names a mono stream's one speaker, as a Twilio call's track does (no voice-based turns)."""
    from emostream.stream.config import Config, override

    return override(Config(), source={"realtime": realtime, "max_streams": 64, "channel_names": channel_names},
                    publish={"stdout": False}, asr=CONFIGS[name])


async def warm_up(runtime: Any, cfg: Any, dialogue: dict) -> None:
    """One fast replay of a dialogue before timing: every model's first call (Whisper's buffers, the speaker
    encoder, the feature extractor) is slow once per process, which a long-running service never pays again."""
    from emostream.stream.config import override
    from emostream.stream.pipeline import StreamSpec, run_streams

    source = timed_source(Path(dialogue["path"]), "warm-up", cfg.vad.frame_samples, False, SourceClock())
    await run_streams([StreamSpec("warm-up", source, dialogue["path"], live=False)],
                      override(cfg, source={"realtime": False}),
                      runtime, [Recorder()], asyncio.Event())


def usage() -> tuple[float, float]:
    """(CPU seconds of this process, user + system, all threads; peak RSS in MiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024


async def stream_job(job: dict) -> dict:
    """Runs N streams of one configuration and returns the raw events and process figures."""
    from emostream.stream.pipeline import StreamSpec, run_streams
    from emostream.stream.services.runtime import load_runtime

    cfg = bench_config(job["config"], job["realtime"], tuple(job.get("channel_names", ())))
    t_load = time.monotonic()
    runtime = await asyncio.to_thread(load_runtime, cfg)
    await warm_up(runtime, cfg, job["dialogues"][0])
    load_s = time.monotonic() - t_load
    recorder, specs, streams = Recorder(), [], {}
    for i in range(job["streams"]):
        d = job["dialogues"][i % len(job["dialogues"])]
        sid, clock = f"s{i + 1:02d}-{d['name']}", SourceClock()
        source = timed_source(Path(d["path"]), sid, cfg.vad.frame_samples, cfg.source.realtime, clock)
        specs.append(StreamSpec(sid, source, d["path"], live=cfg.source.realtime))
        streams[sid] = {"dialogue": d, "clock": clock}
    cpu0, t0 = usage()[0], time.monotonic()
    outcome = await run_streams(specs, cfg, runtime, [recorder], asyncio.Event())
    wall = time.monotonic() - t0
    cpu1, rss = usage()
    await runtime.close()
    engine = getattr(runtime.asr, "engine", None)  # the in-process ASR: how far its batches grew
    return {
        "wall_s": wall, "cpu_cores": (cpu1 - cpu0) / wall, "peak_rss_mib": rss, "load_s": load_s,
        "batches": {op: dict(sizes) for op, sizes in engine.batches.items()} if engine else {},
        "loadavg": os.getloadavg(),
        "errors": {sid: repr(r) for sid, r in outcome.items() if isinstance(r, BaseException)},
        "streams": {sid: {"dialogue": s["dialogue"], "t0": s["clock"].t0, "lag_s": s["clock"].lag_s}
                    for sid, s in streams.items()},
        "events": [{"arrival": t, **e} for t, e in recorder.events],
    }


def turn_cuts(dialogue: dict) -> list[tuple[np.ndarray, str]]:
    """A dialogue's ground-truth turns as 16 kHz mono audio (an 8 kHz telephone copy is resampled, as the stream's
    sources do) with their texts."""
    import soundfile as sf
    import soxr

    audio, sr = sf.read(dialogue["path"], dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if sr != 16000:
        mono = soxr.resample(mono, sr, 16000).astype(np.float32)
    return [(mono[int(t["start_s"] * 16000): int(t["end_s"] * 16000)], t["text"]) for t in dialogue["turns"]]


def asr_job(job: dict) -> dict:
    """Whisper alone on ground-truth-cut turns: decode time per utterance and WER, per (model, window, beam,
    threads, channel): wideband dialogues, or their telephone copies (8 kHz mu-law)."""
    import torch

    from emostream.stream.config import AsrConfig
    from emostream.stream.services.asr import Transcriber
    from emostream.stream.services.thread_pools import quiet_thread_pools

    quiet_thread_pools()  # as the runtime's
    cuts = {channel: [c for d in job[key] for c in turn_cuts(d)]
            for channel, key in (("wideband", "dialogues"), ("telephone", "phone_dialogues"))}
    rows = []
    for model, window_s, beam, threads, channel in job["settings"]:
        asr = Transcriber(AsrConfig(model=model, window_s=window_s, beam_size=beam, threads=threads),
                          torch.device("cpu"))
        asr.transcribe(cuts[channel][0][0])  # warm-up
        times, pairs = [], []
        for audio, text in cuts[channel]:
            t0 = time.monotonic()
            hyp = asr.transcribe(audio).text
            times.append((time.monotonic() - t0) * 1000)
            pairs.append((text, hyp))
        rows.append({"model": model, "window_s": window_s, "beam_size": beam, "threads": threads,
                     "channel": channel, "utterances": len(pairs), "decode_ms": times, "wer": word_error_rate(pairs),
                     "hypotheses": [h for _, h in pairs]})
    return {"rows": rows, "loadavg": os.getloadavg()}


def worker_main(job_path: Path, result_path: Path) -> int:
    """Entry point of the per-configuration subprocess."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    job = json.loads(job_path.read_text())
    if job["kind"] == "asr":
        result = asr_job(job)
    elif job["kind"] == "encoder":
        result = encoder_job(job)
    else:
        result = asyncio.run(stream_job(job))
    result_path.write_text(json.dumps(result))
    return 0
