"""Typed messages that flow one way through the pipeline. Each stage consumes one kind and emits the next.

Times named ``*_wall`` are ``time.monotonic()`` seconds; ``latency_ms`` accumulates each stage's
processing time so the published event can show where the time went.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from emostream.models.collate import PastUtterance
from emostream.stream.events import Event


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One VAD frame of one channel: 16 kHz int16 samples, and when the pipeline received them."""

    stream_id: str
    channel: int
    index: int  # frame number within the channel
    samples: np.ndarray
    wall: float


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The source is exhausted (or stopped); stages flush and pass it on."""

    stream_id: str
    frames: int  # frames read per channel
    peak: float  # highest absolute sample seen, for a useful message when no speech was found
    error: str = ""  # why the source stopped early; raised once what was read has been published


class Ending:
    """How work started on a guess (``EndCandidate``) is matched to the utterance the endpoint cuts: by
    ``pause`` (same utterance, same voiced end) or, where the exact audio matters, by ``key`` (same audio too)."""

    __slots__ = ()
    utterance_id: str
    end_s: float
    audio: np.ndarray

    @property
    def pause(self) -> tuple[str, float]:
        return self.utterance_id, self.end_s

    @property
    def key(self) -> tuple[str, float, int]:
        return self.utterance_id, self.end_s, len(self.audio)


@dataclass(frozen=True, slots=True)
class Utterance(Ending):
    """A segment of speech cut by the VAD."""

    stream_id: str
    utterance_id: str
    seq: int
    channel: int
    speaker: str
    start_s: float
    end_s: float
    audio: np.ndarray  # float32, 16 kHz, with pre- and post-roll
    audio_end_wall: float  # when the last voiced frame reached the pipeline
    endpoint_wall: float  # when the VAD declared the end (after the hangover)
    split: bool
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartialAudio:
    """The utterance so far, while it is still spoken: input for a partial transcript."""

    stream_id: str
    utterance_id: str
    seq: int
    channel: int
    speaker: str
    start_s: float
    end_s: float
    audio: np.ndarray  # float32, 16 kHz, from the pre-roll up to now
    wall: float  # when the newest frame in ``audio`` reached the pipeline


@dataclass(frozen=True, slots=True)
class EndCandidate(Ending):
    """Speech has paused: the utterance as it will be if the hangover confirms the end. Transcribing it
    now hides the decode behind the hangover; if speech resumes it is simply not used. One pause may send
    two: an early guess (its audio still lacks part of the post-roll) and the ``exact`` cut."""

    utterance_id: str
    end_s: float  # the voiced end this candidate assumes
    audio: np.ndarray
    exact: bool  # the audio is, sample for sample, what the endpoint will hand on if it confirms this end


@dataclass(frozen=True, slots=True)
class Speculated:
    """The transcript of an ``EndCandidate``, decoded during the hangover. Later stages may prepare for it
    (embed its text) and use that work when the final transcript of the utterance is the same."""

    utterance_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Acoustic:
    """An utterance with its acoustic feature frames."""

    utterance: Utterance
    frames: torch.Tensor  # (T, audio_dim) raw feature frames
    latency_ms: dict[str, float]


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    avg_logprob: float
    no_speech_prob: float
    # Decoded during the hangover from the early ``EndCandidate`` (its audio lacks the end of the post-roll),
    # not from the utterance as the endpoint cut it; set by the transcription stage.
    speculated: bool = False


@dataclass(frozen=True, slots=True)
class Transcribed:
    acoustic: Acoustic
    transcript: Transcript
    latency_ms: dict[str, float]


@dataclass(frozen=True, slots=True)
class Embedded:
    """The text embedding of a transcribed utterance (``None`` where ASR heard no words)."""

    transcribed: Transcribed
    sentence: torch.Tensor | None  # (text_dim,)
    tokens: torch.Tensor | None  # (L, text_dim) when the bundle wants token-level text
    latency_ms: dict[str, float]


@dataclass(frozen=True, slots=True)
class InContext:
    """An utterance with the H previous utterances of its dialogue (past only, oldest first)."""

    embedded: Embedded
    context: tuple[PastUtterance, ...]
    latency_ms: dict[str, float]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An event ready to publish. Every stage passes it on untouched, so early events (partials, the
    audio-only estimate) travel down the same queues as the utterance they belong to.
    ``audio_end_wall`` dates the end-to-end latency."""

    event: Event
    audio_end_wall: float
