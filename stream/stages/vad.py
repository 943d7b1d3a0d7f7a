"""Utterance segmentation with WebRTC VAD: an incremental endpointer fed one frame at a time.

A segment starts when ``onset_ratio`` of the last ``onset_ms`` of frames are voiced, and ends after
``hangover_ms`` without a voiced frame; speech longer than ``max_utterance_ms`` is split there. The
reported bounds are the first and last voiced frames; the audio handed on also carries ``pre_roll_ms``
before and ``post_roll_ms`` after them, because Whisper mis-hears words whose onset is clipped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = 2  # 0 (keeps most audio) … 3 (drops most non-speech)
    frame_ms: int = 30  # webrtcvad accepts 10, 20 or 30 ms
    onset_ms: int = 150
    onset_ratio: float = 0.6
    hangover_ms: int = 300
    pre_roll_ms: int = 200
    post_roll_ms: int = 150
    min_utterance_ms: int = 250
    max_utterance_ms: int = 15000
    # Optional second opinion at the endpoint: Silero VAD (a neural model) must hear at least
    # silero_min_speech_ms of speech in the segment, or it is dropped as noise.
    confirm_with_silero: bool = False
    silero_threshold: float = 0.5
    silero_min_speech_ms: int = 150

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"vad.aggressiveness must be 0, 1, 2 or 3, not {self.aggressiveness}")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"vad.frame_ms must be 10, 20 or 30, not {self.frame_ms}")
        if not 0 < self.silero_threshold < 1:
            raise ValueError(f"vad.silero_threshold must be in (0, 1), not {self.silero_threshold}")
        if not 0 < self.onset_ratio <= 1:
            raise ValueError(f"vad.onset_ratio must be in (0, 1], not {self.onset_ratio}")
        if self.post_roll_ms > self.hangover_ms:
            raise ValueError("vad.post_roll_ms must not exceed vad.hangover_ms (the audio after the end is not kept)")
        for name in ("onset_ms", "hangover_ms", "min_utterance_ms", "max_utterance_ms"):
            if getattr(self, name) < self.frame_ms:
                raise ValueError(f"vad.{name} must be at least vad.frame_ms ({self.frame_ms} ms)")

    @property
    def frame_samples(self) -> int:
        return SAMPLE_RATE * self.frame_ms // 1000

    def frames(self, ms: int) -> int:
        return max(1, round(ms / self.frame_ms))


@dataclass(frozen=True)
class Segment:
    """One utterance: voiced bounds and the padded audio, in samples from the start of the stream."""

    start: int  # first sample of the first voiced frame
    end: int  # one past the last sample of the last voiced frame
    audio_start: int  # where ``audio`` begins (start minus the pre-roll)
    audio: np.ndarray  # float32 in [-1, 1]
    split: bool  # True if cut at max_utterance_ms rather than at a pause


class Segmenter:
    """Feeds frames of ``cfg.frame_samples`` int16 samples; returns the segments they complete."""

    def __init__(self, cfg: VadConfig) -> None:
        self.cfg = cfg
        self._vad = webrtcvad.Vad(cfg.aggressiveness)
        # WebRTC VAD's noise model drifts over long digital silence (all zeros, as in the idle channel of a
        # stereo call) and then misses soft onsets; one LSB of dither on its copy of the audio prevents it.
        self._dither = np.random.default_rng(0)
        self._onset: deque[bool] = deque(maxlen=cfg.frames(cfg.onset_ms))
        # Frames kept: the pre-roll and onset window in silence; the whole utterance in speech.
        self._frames: deque[np.ndarray] = deque(maxlen=cfg.frames(cfg.pre_roll_ms) + cfg.frames(cfg.onset_ms))
        self._index = 0  # index of the next frame
        self._first_kept = 0  # frame index of self._frames[0]
        self._start: int | None = None  # first voiced frame of the current utterance
        self._last_voiced = 0

    @property
    def speech_frames(self) -> int:
        """Frames since the current utterance's first voiced frame (0 outside speech): cheap, unlike current()."""
        return 0 if self._start is None else self._index - self._start

    @property
    def pause_frames(self) -> int:
        """Unvoiced frames since the current utterance's last voiced one (0 outside speech)."""
        return 0 if self._start is None else self._index - 1 - self._last_voiced

    def push(self, frame: np.ndarray) -> list[Segment]:
        cfg = self.cfg
        if len(frame) != cfg.frame_samples:
            raise ValueError(f"VAD frame has {len(frame)} samples, expected {cfg.frame_samples}")
        dithered = frame.astype(np.int32) + np.rint(self._dither.normal(0.0, 1.0, len(frame))).astype(np.int32)
        voiced = self._vad.is_speech(np.clip(dithered, -32768, 32767).astype(np.int16).tobytes(), SAMPLE_RATE)
        if self._frames.maxlen is not None and len(self._frames) == self._frames.maxlen:
            self._first_kept += 1
        self._frames.append(frame)
        i, self._index = self._index, self._index + 1
        out: list[Segment] = []
        if self._start is None:
            self._onset.append(voiced)
            if len(self._onset) == self._onset.maxlen and sum(self._onset) >= cfg.onset_ratio * len(self._onset):
                first = i - len(self._onset) + 1 + list(self._onset).index(True)
                self._begin(first)
                self._last_voiced = i
            return out
        if voiced:
            self._last_voiced = i
        if i - self._last_voiced >= cfg.frames(cfg.hangover_ms):
            out += self._finish(self._last_voiced + 1, split=False)
        elif i + 1 - self._start >= cfg.frames(cfg.max_utterance_ms):
            out += self._finish(i + 1, split=True)
            self._begin(i + 1)
            self._last_voiced = i
        return out

    def current(self) -> Segment | None:
        """While speech is going on: the utterance so far (for partial transcripts), else None."""
        if self._start is None:
            return None
        cfg, n = self.cfg, self.cfg.frame_samples
        a0 = max(self._first_kept, self._start - cfg.frames(cfg.pre_roll_ms))
        frames = list(self._frames)[a0 - self._first_kept :]
        audio = np.concatenate(frames).astype(np.float32) / 32768.0
        return Segment(start=self._start * n, end=self._index * n, audio_start=a0 * n, audio=audio, split=False)

    def pausing(self, frames: int) -> Segment | None:
        """The utterance as it would end, exactly ``frames`` unvoiced frames into a pause; else None.

        What the hangover will confirm some frames later can be transcribed in the meantime.
        """
        if self._start is None or self._index - 1 - self._last_voiced != frames:
            return None
        current = self.current()
        assert current is not None
        n = self.cfg.frame_samples
        return Segment(start=current.start, end=(self._last_voiced + 1) * n, audio_start=current.audio_start,
                       audio=current.audio, split=False)

    def flush(self) -> list[Segment]:
        """Ends the stream: an utterance still open is closed at its last voiced frame."""
        if self._start is None:
            return []
        return self._finish(self._last_voiced + 1, split=False)

    def _begin(self, first_voiced: int) -> None:
        self._start = first_voiced
        self._frames = deque(self._frames)  # unbounded while in speech
        self._onset.clear()

    def _finish(self, end_frame: int, split: bool) -> list[Segment]:
        cfg, start = self.cfg, self._start
        assert start is not None
        self._start = None
        keep = cfg.frames(cfg.pre_roll_ms) + cfg.frames(cfg.onset_ms)
        frames = list(self._frames)
        first_kept = self._first_kept
        # Keep only the trailing frames for the next utterance's pre-roll.
        tail = frames[-keep:]
        self._frames = deque(tail, maxlen=keep)
        self._first_kept = first_kept + len(frames) - len(tail)
        if (end_frame - start) * cfg.frame_ms < cfg.min_utterance_ms:
            return []
        a0 = max(first_kept, start - cfg.frames(cfg.pre_roll_ms))
        a1 = min(first_kept + len(frames), end_frame + (0 if split else cfg.frames(cfg.post_roll_ms)))
        audio = np.concatenate(frames[a0 - first_kept : a1 - first_kept]).astype(np.float32) / 32768.0
        n = cfg.frame_samples
        return [Segment(start=start * n, end=end_frame * n, audio_start=a0 * n, audio=audio, split=split)]


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] (clipped beyond) → int16, rounded to the nearest step."""
    return np.rint(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def segment_all(audio: np.ndarray, cfg: VadConfig) -> list[Segment]:
    """Segments a whole 16 kHz float signal offline, exactly as the stream would."""
    seg = Segmenter(cfg)
    pcm = to_int16(audio)
    n = cfg.frame_samples
    out: list[Segment] = []
    for k in range(0, len(pcm) - n + 1, n):
        out += seg.push(pcm[k : k + n])
    return out + seg.flush()


def speech_spans(audio: np.ndarray, cfg: VadConfig) -> list[tuple[int, int]]:
    """Voiced ``(start, end)`` sample spans of a 16 kHz float signal."""
    return [(s.start, s.end) for s in segment_all(audio, cfg)]


def cut_utterance(audio: np.ndarray, span: tuple[int, int], cfg: VadConfig) -> np.ndarray:
    """The audio the stream hands on for a voiced span: with the same pre- and post-roll."""
    pre = cfg.frames(cfg.pre_roll_ms) * cfg.frame_samples
    post = cfg.frames(cfg.post_roll_ms) * cfg.frame_samples
    return audio[max(0, span[0] - pre) : span[1] + post]
