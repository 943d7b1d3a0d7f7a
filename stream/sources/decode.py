"""Decoding audio files into 16 kHz int16 frames per channel, block by block (a 2-hour file is never held whole)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from emostream.stream.errors import UserError
from emostream.stream.stages.vad import SAMPLE_RATE, to_int16

log = logging.getLogger(__name__)
BLOCK_SECONDS = 2.0


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int  # as declared by the header
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _decode_error(path: Path, detail: str) -> UserError:
    return UserError(
        f"{path}: cannot decode audio ({detail}); use WAV, FLAC or OGG "
        f"(convert with: ffmpeg -i '{path}' -ar 16000 out.flac)"
    )


def probe(path: Path) -> AudioInfo:
    """Opens the header; every user mistake (missing, a folder, not audio, empty) becomes a UserError."""
    if not path.exists():
        raise UserError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise UserError(f"{path}: is not a file; pass an audio file (WAV, FLAC or OGG)")
    try:
        with sf.SoundFile(path) as f:
            info = AudioInfo(path, f.samplerate, f.channels, f.frames, f.format)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise _decode_error(path, str(e).split(":")[-1].strip() or "unknown format") from None
    if info.frames <= 0:
        raise UserError(f"{path}: the file holds no audio samples; record or export it again")
    if info.sample_rate < 8000:
        raise UserError(f"{path}: sample rate {info.sample_rate} Hz is too low for speech (8 kHz at least)")
    return info


def read_blocks(info: AudioInfo) -> Iterator[np.ndarray]:
    """Yields ``(channels, n)`` int16 blocks at 16 kHz. NaN/inf samples become 0 (with a warning)."""
    block = int(BLOCK_SECONDS * info.sample_rate)
    resampler = (
        soxr.ResampleStream(info.sample_rate, SAMPLE_RATE, info.channels, dtype="float32")
        if info.sample_rate != SAMPLE_RATE
        else None
    )
    decoded = bad = 0
    try:
        with sf.SoundFile(info.path) as f:
            while True:
                chunk = f.read(block, dtype="float32", always_2d=True)
                last = len(chunk) < block
                decoded += len(chunk)
                if not np.isfinite(chunk).all():
                    mask = ~np.isfinite(chunk)
                    bad += int(mask.sum())
                    chunk = np.where(mask, 0.0, chunk).astype(np.float32)
                if resampler is not None:
                    chunk = resampler.resample_chunk(chunk, last=last)
                if len(chunk):
                    yield to_int16(chunk.T)
                if last:
                    break
    except sf.LibsndfileError as e:
        raise _truncated(info, decoded, str(e).replace("Error : ", "")) from None
    if bad:
        log.warning("%s: %d NaN or infinite samples were replaced by silence", info.path, bad)
    if decoded < info.frames:
        raise _truncated(info, decoded, "the file ends early")


def _truncated(info: AudioInfo, decoded: int, detail: str) -> UserError:
    return UserError(
        f"{info.path}: truncated or corrupt: decoding stopped at {decoded / info.sample_rate:.1f} s of the "
        f"{info.duration_s:.1f} s the header declares ({detail}); events up to that point were published. "
        "Repair or re-export the file"
    )
