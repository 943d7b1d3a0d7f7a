"""Stage: Silero VAD confirms each segment that WebRTC VAD cut (``vad.confirm_with_silero``).

WebRTC VAD is a fast GMM on spectral energy and takes some noise, music and clicks for voice; Silero
is a small neural network that is much harder to fool but costs about 70 ms per second of audio on
one CPU core, so it runs once per segment at the endpoint rather than on every frame.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import torch

from emostream.stream.errors import UserError
from emostream.stream.messages import Utterance
from emostream.stream.stages.stage import Stage
from emostream.stream.stages.vad import SAMPLE_RATE, VadConfig

log = logging.getLogger(__name__)
CHUNK = 512  # samples per Silero decision at 16 kHz


class SileroConfirmation(Stage[Utterance, Utterance]):
    name = "confirm"
    accepts = (Utterance,)

    def __init__(self, cfg: VadConfig) -> None:
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise UserError("vad.confirm_with_silero needs the silero-vad package: pip install silero-vad") from None
        self.model = load_silero_vad(onnx=False)  # its own state: one per stream
        self.cfg = cfg
        self.dropped = 0

    def speech_ms(self, audio: np.ndarray) -> float:
        """Milliseconds of ``audio`` that Silero hears as speech."""
        self.model.reset_states()
        x = torch.from_numpy(audio)
        with torch.no_grad():
            probs = [float(self.model(x[i : i + CHUNK], SAMPLE_RATE)) for i in range(0, len(x) - CHUNK + 1, CHUNK)]
        return sum(p >= self.cfg.silero_threshold for p in probs) * CHUNK * 1000 / SAMPLE_RATE

    async def process(self, item: Utterance) -> list[Utterance]:
        heard = await asyncio.to_thread(self.speech_ms, item.audio)
        if heard >= self.cfg.silero_min_speech_ms:
            return [item]
        self.dropped += 1
        log.info("%s: Silero VAD heard %.0f ms of speech in %.2f-%.2f s; segment dropped", item.stream_id, heard,
                 item.start_s, item.end_s)
        return []
