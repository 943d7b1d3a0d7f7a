"""File replay: decoded audio cut into VAD frames per channel, as fast as the pipeline takes them or in real time."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from emostream.stream.errors import UserError
from emostream.stream.messages import AudioFrame, EndOfStream
from emostream.stream.sources.decode import AudioInfo, read_blocks
from emostream.stream.stages.vad import SAMPLE_RATE


async def replay(
    info: AudioInfo, stream_id: str, frame_samples: int, realtime: bool, stop: asyncio.Event
) -> AsyncIterator[AudioFrame | EndOfStream]:
    """Yields frames channel by channel; a trailing partial frame is zero-padded so no speech is lost.

    A decoding failure midway ends the stream normally, so that utterances already read are still
    published, and travels in ``EndOfStream.error``. Setting ``stop`` ends it early, the same way.
    """
    frame_s = frame_samples / SAMPLE_RATE
    t0 = time.monotonic()
    index, peak = 0, 0
    pending = np.zeros((info.channels, 0), dtype=np.int16)
    blocks = read_blocks(info)
    error = ""
    while not stop.is_set():
        try:
            block = await asyncio.to_thread(next, blocks, None)
        except UserError as e:
            error, block = str(e), None
        if block is None:
            if pending.shape[1]:
                pad = frame_samples - pending.shape[1]
                block, pending = np.pad(pending, ((0, 0), (0, pad))), pending[:, :0]
            else:
                break
        else:
            block = np.concatenate([pending, block], axis=1)
        usable = block.shape[1] // frame_samples * frame_samples
        pending = block[:, usable:]
        if usable:
            peak = max(peak, int(np.abs(block[:, :usable].astype(np.int32)).max()))
        for k in range(0, usable, frame_samples):
            if stop.is_set():
                break
            if realtime:
                await asyncio.sleep(max(0.0, t0 + (index + 1) * frame_s - time.monotonic()))
            wall = time.monotonic()
            for ch in range(info.channels):
                yield AudioFrame(stream_id, ch, index, block[ch, k : k + frame_samples], wall)
            index += 1
    yield EndOfStream(stream_id, frames=index, peak=peak / 32768.0, error=error)


def stream_id_for(path: Path) -> str:
    """A topic-safe id from the file name (MQTT forbids + and # in topics; / would add levels)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem) or "stream"
