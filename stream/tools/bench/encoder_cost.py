"""The Whisper work per utterance (issue 16): what sharing one encoder pass saves, and what batching across
streams saves per stream.

- **Per utterance**: the two-pass arrangement (the ASR encodes and decodes its early guess, the features encode
  the exact cut with their own model) against one pass (the exact cut encoded once, decoded, its states kept),
  in CPU milliseconds (all threads of the process) and wall milliseconds, on ground-truth turns cut with the
  VAD's pre- and post-roll.
- **Per stream**: N streams' finals arriving together, encoded and decoded through the shared engine, which
  batches them; cost per stream of each step as N rises, with the batch sizes reached.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np

BATCH_STREAMS = (1, 2, 4, 8, 16)
EARLY_S = 0.09  # the early guess (60 ms into the pause) lacks this much of the 150 ms post-roll


def cuts(dialogues: list[dict]) -> list[np.ndarray]:
    """Every turn as the endpoint would cut it: 200 ms of pre-roll, 150 ms of post-roll (the VAD's defaults)."""
    import soundfile as sf

    out = []
    for d in dialogues:
        audio, sr = sf.read(d["path"], dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        out += [mono[max(0, int((t["start_s"] - 0.2) * sr)): int((t["end_s"] + 0.15) * sr)] for t in d["turns"]]
    return out


def timed(fn: Any) -> tuple[Any, float, float]:
    """(result, CPU ms of the whole process, wall ms)."""
    c0, w0 = time.process_time(), time.monotonic()
    result = fn()
    return result, (time.process_time() - c0) * 1000, (time.monotonic() - w0) * 1000


def per_utterance(transcriber: Any, extractor: Any, utterances: list[np.ndarray]) -> dict[str, Any]:
    """Median CPU and wall ms per utterance, two passes against one."""
    import torch

    from emostream.stream.services.asr import FINAL, AsrService
    from emostream.stream.services.shared_states import SharedStates

    early = int(EARLY_S * 16000)
    two = []
    for audio in utterances:
        _, cpu_a, wall_a = timed(lambda a=audio: transcriber.transcribe(a[:-early]))
        _, cpu_b, wall_b = timed(lambda a=audio: extractor([torch.from_numpy(a)]))
        two.append((cpu_a + cpu_b, wall_a + wall_b))

    async def shared() -> list[tuple[float, float]]:
        service, out = AsrService(transcriber), []
        for audio in utterances:
            c0, w0 = time.process_time(), time.monotonic()
            encoding = await service.encode(audio, FINAL)
            await service.decode(encoding, FINAL)
            SharedStates.frames(encoding)
            out.append(((time.process_time() - c0) * 1000, (time.monotonic() - w0) * 1000))
        await service.close()
        return out

    one = asyncio.run(shared())
    med = {k: np.median(np.array(v), axis=0).round(1).tolist() for k, v in (("two", two), ("one", one))}
    return {"utterances": len(utterances), "two_passes_cpu_ms": med["two"][0], "two_passes_wall_ms": med["two"][1],
            "one_pass_cpu_ms": med["one"][0], "one_pass_wall_ms": med["one"][1]}


def per_stream(transcriber: Any, utterances: list[np.ndarray], streams: int) -> dict[str, Any]:
    """N finals at once through a fresh engine: encode, then decode, cost per stream."""
    from emostream.stream.services.asr import FINAL, AsrService

    batch = [utterances[i % len(utterances)] for i in range(streams)]

    async def run() -> tuple[list[float], AsrService]:
        service = AsrService(transcriber, max_batch=max(BATCH_STREAMS))
        marks = [time.process_time(), time.monotonic()]
        encodings = await asyncio.gather(*(service.encode(a, FINAL) for a in batch))
        marks += [time.process_time(), time.monotonic()]
        await asyncio.gather(*(service.decode(e, FINAL) for e in encodings))
        marks += [time.process_time(), time.monotonic()]
        await service.close()
        return marks, service

    marks, service = asyncio.run(run())
    ms = [(marks[i + 2] - marks[i]) * 1000 / streams for i in range(4)]
    return {"streams": streams, "encode_cpu_ms": round(ms[0], 1), "encode_wall_ms": round(ms[1], 1),
            "decode_cpu_ms": round(ms[2], 1), "decode_wall_ms": round(ms[3], 1),
            "encode_batches": sorted(service.engine.batches["encode"].elements()),
            "decode_batches": sorted(service.engine.batches["decode"].elements())}


def encoder_job(job: dict) -> dict:
    import torch

    from emostream.models.bundle import DEFAULT_BUNDLE, read_meta
    from emostream.models.features import make_extractor
    from emostream.stream.config import AsrConfig, ModelConfig
    from emostream.stream.services.asr import Transcriber
    from emostream.stream.services.thread_pools import quiet_thread_pools

    quiet_thread_pools()  # as the runtime's
    utterances = cuts(job["dialogues"])
    transcriber = Transcriber(AsrConfig(), torch.device("cpu"))
    # Whisper's work only: the functionals cost the same in both arrangements (stream/stages/functionals.py).
    # The blocks in the precision a stream's default config serves them in.
    extractor = make_extractor(read_meta(DEFAULT_BUNDLE).features, with_functionals=False,
                               precision=ModelConfig().resolved_precision(torch.device("cpu")))
    per_utterance(transcriber, extractor, utterances[:2])  # warm-up: first calls allocate
    rows = [per_stream(transcriber, utterances, n) for n in BATCH_STREAMS]
    return {"utterance": per_utterance(transcriber, extractor, utterances), "streams": rows,
            "loadavg": os.getloadavg()}
