"""Live capture from a sound device: the microphone counterpart of :func:`emostream.stream.sources.replay.replay`.

PortAudio calls us on its own audio thread. That thread must never block (a late callback loses audio at
the driver), so the callback only copies the block and hands it to the event loop with
``call_soon_threadsafe``; the loop side puts it in a bounded queue and drops (counts, warns) when the
pipeline has fallen behind, so memory stays bounded on a slow machine. Dropped blocks are replaced by
silence when they are yielded, so frame indices, and therefore utterance times, keep following the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from emostream.stream.errors import UserError
from emostream.stream.messages import AudioFrame, EndOfStream
from emostream.stream.sources.resample import LiveResampler
from emostream.stream.stages.vad import SAMPLE_RATE

log = logging.getLogger(__name__)

LIST_HINT = "run `emo-stream --list-devices` to see the input devices"
WARN_INTERVAL_S = 5.0  # at most one warning of each kind this often: an overloaded machine must not flood stderr


def _sounddevice() -> ModuleType:
    """Imports sounddevice late: it loads PortAudio, which a replay-only install may lack."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError("PortAudio library not found")
        raise UserError(
            f"cannot use a microphone: {e}; install PortAudio (apt-get install libportaudio2) and try again"
        ) from None
    return sounddevice


@dataclass
class CaptureStats:
    """What the input lost, for the live view and the session metrics; never lost silently."""

    overruns: int = 0  # callbacks flagged input_overflow: the device lost audio before PortAudio handed it over
    dropped_frames: int = 0  # blocks (one frame each) dropped because our bounded queue was full
    frames: int = 0  # frames yielded per channel (dropped ones included, as silence)


class _Throttled:
    """Logs a running count at most every ``WARN_INTERVAL_S``; the first occurrence is logged at once."""

    def __init__(self, message: str) -> None:
        self.message = message
        self._last = -float("inf")

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self._last >= WARN_INTERVAL_S:
            self._last = now
            log.warning(self.message, count)


def _input_devices(sd: ModuleType) -> list[dict[str, Any]]:
    return [d for d in sd.query_devices() if d["max_input_channels"] > 0]


def list_devices() -> str:
    """A table of input devices for ``emo-stream --list-devices``; ``*`` marks the default input."""
    sd = _sounddevice()
    apis = [a["name"] for a in sd.query_hostapis()]
    default = _default_input(sd)
    rows = [("", "index", "name", "host API", "inputs", "default rate")]
    for d in _input_devices(sd):
        rows.append(
            (
                "*" if d["index"] == default else "",
                str(d["index"]),
                d["name"],
                apis[d["hostapi"]],
                str(d["max_input_channels"]),
                f"{d['default_samplerate']:.0f} Hz",
            )
        )
    if len(rows) == 1:
        return "no input devices found (is a microphone connected, or PulseAudio/PipeWire running?)"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _default_input(sd: ModuleType) -> int:
    index = sd.default.device[0]  # an (input, output) pair; -1 when there is none
    return -1 if index is None else int(index)


def resolve_device(device: str | int | None) -> dict[str, Any]:
    """The PortAudio input device for a ``--mic`` value: an index, an exact name, or a unique part of one.

    Raises a UserError saying what to do, rather than PortAudio's terse errors.
    """
    sd = _sounddevice()
    inputs = _input_devices(sd)
    if device is None or device == "":
        index = _default_input(sd)
        if index < 0:
            raise UserError(f"no default input device; name one with --mic DEVICE ({LIST_HINT})")
        return sd.query_devices(index)
    if isinstance(device, int) or str(device).strip().isdigit():
        index = int(device)
        found = [d for d in inputs if d["index"] == index]
        if not found:
            raise UserError(f"no input device with index {index}; {LIST_HINT}")
        return found[0]
    name = str(device).strip().lower()
    exact = [d for d in inputs if d["name"].lower() == name]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [d for d in inputs if name in d["name"].lower()]
    if not partial:
        raise UserError(f"no input device named {device!r}; {LIST_HINT}")
    if len(partial) > 1:
        options = ", ".join(f"{d['index']}: {d['name']}" for d in partial)
        raise UserError(f"{device!r} matches several input devices ({options}); give its index instead")
    return partial[0]


def _choose_rate(sd: ModuleType, index: int, channels: int, default_rate: float) -> int:
    """16 kHz when the device takes it (no resampling); else its default rate, resampled by us."""
    try:
        sd.check_input_settings(device=index, channels=channels, dtype="int16", samplerate=SAMPLE_RATE)
        return SAMPLE_RATE
    except Exception:  # PortAudioError or ValueError: the device refuses 16 kHz
        return round(default_rate)


async def capture(
    device: str | int | None,
    stream_id: str,
    frame_samples: int,
    stop: asyncio.Event,
    stats: CaptureStats,
    channels: int = 1,
    queue_frames: int = 200,
) -> AsyncIterator[AudioFrame | EndOfStream]:
    """Yields 16 kHz int16 frames of ``frame_samples`` per channel from ``device`` until ``stop`` is set.

    ``wall`` is ``time.monotonic()`` when PortAudio delivered the block that completed the frame, so latency
    is measured from when the sound was available, not from when the pipeline got round to it. On stop, what
    the device already delivered is still yielded, then ``EndOfStream``. If the device stops by itself
    (unplugged), the stream ends with ``EndOfStream.error`` saying so.
    """
    sd = _sounddevice()
    info = resolve_device(device)
    if info["max_input_channels"] < channels:
        raise UserError(
            f"input device {info['name']!r} has {info['max_input_channels']} channel(s), not {channels}; {LIST_HINT}"
        )
    rate = _choose_rate(sd, info["index"], channels, info["default_samplerate"])
    blocksize = frame_samples if rate == SAMPLE_RATE else round(frame_samples * rate / SAMPLE_RATE)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[np.ndarray, float, int]] = asyncio.Queue(maxsize=queue_frames)
    finished = asyncio.Event()
    warn_overrun = _Throttled(
        "microphone: %d input overrun(s) so far: the device lost audio before we got it (machine overloaded?)"
    )
    warn_drop = _Throttled(
        f"microphone: %d frame(s) dropped so far: the pipeline fell behind and the {queue_frames}-frame input "
        "queue was full (replaced by silence)"
    )
    gap = 0  # blocks dropped since the last one queued; yielded as silence before it

    def on_loop(block: np.ndarray, wall: float, overflow: bool) -> None:
        nonlocal gap
        if overflow:
            stats.overruns += 1
            warn_overrun(stats.overruns)
        if queue.full():
            stats.dropped_frames += 1
            gap += 1
            warn_drop(stats.dropped_frames)
            return
        queue.put_nowait((block, wall, gap))
        gap = 0

    def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Audio thread: copy (PortAudio reuses the buffer) and hand over; nothing here may block.
        wall = time.monotonic()
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting
            loop.call_soon_threadsafe(on_loop, indata.T.copy(), wall, bool(status.input_overflow))

    def on_finished() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(finished.set)

    def open_stream() -> Any:
        s = sd.InputStream(
            device=info["index"],
            samplerate=rate,
            channels=channels,
            dtype="int16",
            blocksize=blocksize,
            callback=callback,
            finished_callback=on_finished,
        )
        s.start()
        return s

    try:
        stream = await asyncio.to_thread(open_stream)
    except (sd.PortAudioError, ValueError) as e:
        raise UserError(f"cannot open input device {info['name']!r} at {rate} Hz: {e}; {LIST_HINT}") from None
    log.info("capturing from %r (index %d) at %d Hz, %d channel(s)%s", info["name"], info["index"], rate,
             channels, "" if rate == SAMPLE_RATE else f", resampled to {SAMPLE_RATE} Hz")

    resampler = LiveResampler(rate, SAMPLE_RATE, channels)
    framer = _Framer(stream_id, channels, frame_samples, stats)
    error = ""
    stop_wait = asyncio.ensure_future(stop.wait())
    end_wait = asyncio.ensure_future(finished.wait())
    get: asyncio.Future[tuple[np.ndarray, float, int]] | None = None
    try:
        while not (stop.is_set() or finished.is_set()):
            if queue.empty():
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait({get, stop_wait, end_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                item = get.result()  # if stop came too, this block is still yielded; the loop ends after it
            else:
                item = queue.get_nowait()
            for frame in framer.push(*_convert(item, resampler, blocksize)):
                yield frame
        if not stop.is_set():
            error = f"input device {info['name']!r} stopped delivering audio (disconnected?)"
    finally:
        for waiter in (stop_wait, end_wait, get):
            if waiter is not None:
                waiter.cancel()
        await asyncio.to_thread(stream.close)  # waits for the last callback; what it queued is drained below
    await asyncio.sleep(0)  # runs on_loop handles scheduled by the last callbacks
    while not queue.empty():
        for frame in framer.push(*_convert(queue.get_nowait(), resampler, blocksize)):
            yield frame
    for frame in framer.push(resampler.flush(), time.monotonic(), flush=True):
        yield frame
    if stats.overruns or stats.dropped_frames:
        log.warning("microphone: %d input overrun(s), %d dropped frame(s) in %d frames", stats.overruns,
                    stats.dropped_frames, stats.frames)
    yield EndOfStream(stream_id, frames=framer.index, peak=framer.peak / 32768.0, error=error)


def _convert(
    item: tuple[np.ndarray, float, int], resampler: LiveResampler, blocksize: int
) -> tuple[np.ndarray, float]:
    """A queued block as (channels, n) int16 at 16 kHz, preceded by silence for blocks dropped before it."""
    block, wall, gap = item
    if gap:
        block = np.concatenate([np.zeros((block.shape[0], gap * blocksize), np.int16), block], axis=1)
    return resampler(block), wall


class _Framer:
    """Cuts 16 kHz blocks of any length into frames of ``frame_samples`` per channel, in order."""

    def __init__(self, stream_id: str, channels: int, frame_samples: int, stats: CaptureStats) -> None:
        self.stream_id, self.frame_samples, self.stats = stream_id, frame_samples, stats
        self.pending = np.zeros((channels, 0), np.int16)
        self.index, self.peak = 0, 0

    def push(self, block: np.ndarray, wall: float, flush: bool = False) -> list[AudioFrame]:
        block = np.concatenate([self.pending, block], axis=1) if self.pending.shape[1] else block
        if flush and block.shape[1] % self.frame_samples:
            pad = self.frame_samples - block.shape[1] % self.frame_samples
            block = np.pad(block, ((0, 0), (0, pad)))
        usable = block.shape[1] // self.frame_samples * self.frame_samples
        self.pending = block[:, usable:]
        if not usable:
            return []
        self.peak = max(self.peak, int(np.abs(block[:, :usable].astype(np.int32)).max()))
        out: list[AudioFrame] = []
        for k in range(0, usable, self.frame_samples):
            for ch in range(block.shape[0]):
                out.append(AudioFrame(self.stream_id, ch, self.index, block[ch, k : k + self.frame_samples], wall))
            self.index += 1
        self.stats.frames = self.index
        return out

