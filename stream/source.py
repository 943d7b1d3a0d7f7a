"""File replay: decoded audio cut into VAD frames per channel, as fast as the pipeline takes them or in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from emostream.stream.audio import AudioInfo, read_blocks
from emostream.stream.errors import UserError
from emostream.stream.messages import AudioFrame, EndOfStream
from emostream.stream.vad import SAMPLE_RATE


async def replay(
    info: AudioInfo, stream_id: str, frame_samples: int, realtime: bool
) -> AsyncIterator[AudioFrame | EndOfStream]:
    """Yields frames channel by channel; a trailing partial frame is zero-padded so no speech is lost.

    A decoding failure midway ends the stream normally, so that utterances already read are still
    published, and travels in ``EndOfStream.error``.
    """
    frame_s = frame_samples / SAMPLE_RATE
    t0 = time.monotonic()
    index, peak = 0, 0
    pending = np.zeros((info.channels, 0), dtype=np.int16)
    blocks = read_blocks(info)
    error = ""
    while True:
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
            if realtime:
                await asyncio.sleep(max(0.0, t0 + (index + 1) * frame_s - time.monotonic()))
            wall = time.monotonic()
            for ch in range(info.channels):
                yield AudioFrame(stream_id, ch, index, block[ch, k : k + frame_samples], wall)
            index += 1
    yield EndOfStream(stream_id, frames=index, peak=peak / 32768.0, error=error)
