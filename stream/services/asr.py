"""ASR with faster-whisper ``tiny.en`` (offline, from its PyPI package), shared by every stream.

One :class:`AsrService` serves every stream: jobs wait in a priority queue where finals always go
before partials, and one decode runs at a time (CTranslate2 already uses every core given to it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from emostream.models.whisper_states import MAX_WINDOW_S, encode_padded, load_whisper
from emostream.stream.config import AsrConfig
from emostream.stream.messages import Transcript
from emostream.stream.stages.vad import SAMPLE_RATE

log = logging.getLogger(__name__)
FINAL, PARTIAL = 0, 1
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

        self.cfg = cfg
        self.model = load_whisper("tiny.en", device, cfg.compute_type, cfg.threads)
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                   language=cfg.language)
        self.prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]

    def _transcribe_short(self, audio: np.ndarray) -> Transcript:
        result = self.model.model.generate(
            encode_padded(self.model, audio, self.cfg.window_s), [self.prompt], beam_size=self.cfg.beam_size,
            max_length=MAX_TOKENS, return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = self.tokenizer.decode(tokens).strip()
        cfg = self.cfg
        silent = result.no_speech_prob > cfg.no_speech_threshold and avg_logprob < cfg.log_prob_threshold
        if silent or compression_ratio(text) > cfg.max_compression_ratio:
            return Transcript("", avg_logprob=avg_logprob, no_speech_prob=result.no_speech_prob)
        return Transcript(text, avg_logprob=avg_logprob, no_speech_prob=result.no_speech_prob)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        if len(audio) <= MAX_WINDOW_S * SAMPLE_RATE and self.cfg.window_s < MAX_WINDOW_S:
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


@dataclass(order=True)
class _Job:
    priority: int
    order: int
    audio: np.ndarray = field(compare=False)
    done: asyncio.Future = field(compare=False)


class AsrService:
    """Decodes for every stream, finals first. Partials are cheap to lose and finals are not."""

    def __init__(self, transcriber: Transcriber) -> None:
        self.transcriber = transcriber
        self._jobs: asyncio.PriorityQueue[_Job] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._worker: asyncio.Task[None] | None = None

    async def transcribe(self, audio: np.ndarray, priority: int) -> Transcript:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="asr-service")
        job = _Job(priority, next(self._order), audio, asyncio.get_running_loop().create_future())
        await self._jobs.put(job)
        return await job.done

    async def _run(self) -> None:
        while True:
            job = await self._jobs.get()
            if job.done.cancelled():
                continue
            try:
                result = await asyncio.to_thread(self.transcriber.transcribe, job.audio)
            except Exception as e:  # a decode failure belongs to the stream that asked for it
                if not job.done.cancelled():
                    job.done.set_exception(e)
                continue
            if not job.done.cancelled():
                job.done.set_result(result)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
