"""The bundle's acoustic features taken from the ASR's own encoder pass (issue 16: one encode per utterance).

When a bundle's features are the encoder states of the ASR's Whisper model at the ASR's window
(models/whisper_states.py: the ``fast`` bundle's tiny.en at 10 s; the default reads an inner block, which cannot
share), the states the bundle wants are the first rows of the encoder output that the final decode needs anyway.
Encoding once for both saves an encoder pass per utterance, the largest single cost after the decode. A bundle
that also reads the utterance's functionals (eGeMAPS) gets them from the stage after
(stream/stages/functionals.py), as with any other extractor.
"""

from __future__ import annotations

import asyncio

import numpy as np
import torch

from emostream.models.features import FeatureSpec
from emostream.models.whisper_states import HOP, MAX_WINDOW_S
from emostream.stream.config import AsrConfig
from emostream.stream.messages import Transcript
from emostream.stream.services.asr import FINAL, AsrService
from emostream.stream.services.whisper_engine import Encoding
from emostream.stream.stages.vad import SAMPLE_RATE, VadConfig

FRAME_SAMPLES = 2 * HOP  # one encoder state per 20 ms (the encoder's stride-2 convolution)


def why_not_shared(spec: FeatureSpec, asr: AsrConfig, vad: VadConfig, device: torch.device) -> str:
    """Why the ASR's encodes cannot give the bundle its features ("" when they can): they must be the same
    model, window and precision, and every utterance must fit one window without the features' frame cap."""
    longest_s = (vad.max_utterance_ms + vad.pre_roll_ms + vad.post_roll_ms) / 1000
    reasons = [
        (spec.kind != "whisper", f"the bundle's features are {spec.kind!r}, not Whisper states"),
        (spec.whisper_layer != 0, f"the bundle reads encoder block {spec.whisper_layer}, which the ASR's "
                                   "CTranslate2 encoder does not return"),
        (spec.whisper != asr.model, f"the bundle encodes with {spec.whisper!r}, the ASR is {asr.model!r}"),
        (spec.whisper_window_s != asr.window_s, f"windows differ ({spec.whisper_window_s:g} s, {asr.window_s:g} s)"),
        (asr.window_s >= MAX_WINDOW_S, "asr.window_s 30 decodes with faster-whisper's long-form path"),
        (device.type != "cuda" and asr.compute_type != "int8", "the features are int8, asr.compute_type is not"),
        (longest_s > min(MAX_WINDOW_S, spec.max_frames * FRAME_SAMPLES / SAMPLE_RATE),
         f"utterances of up to {longest_s:g} s exceed one window or the features' frame cap"),
        (not asr.share_encoder, "asr.share_encoder is false"),
    ]
    return next((why for failed, why in reasons if failed), "")


class SharedStates:
    """The feature extractor of a bundle whose features the ASR's encodes give (a ``SharedEncoder``):
    ``asr.encode`` once per utterance, then :meth:`frames`, exactly the states ``WhisperStates`` computes from its
    own pass. In a cluster the ASR replica holds one and answers the ingress's passes with it (cluster/models.py)."""

    def __init__(self, asr: AsrService) -> None:
        self.asr = asr

    def start(self, audio: np.ndarray) -> LocalPass:
        return LocalPass(self, audio)

    @staticmethod
    def frames(encoding: Encoding) -> torch.Tensor:
        """``(T, dim)`` float32 on the CPU: one state per 20 ms of the utterance, the window's padding left out."""
        n = max(1, -(-encoding.samples // FRAME_SAMPLES))
        return torch.as_tensor(encoding.states[:n]).float().cpu()


class LocalPass:
    """One utterance's encode in this process: its frames as soon as it is done, its transcript decoded from it.
    Both halves await it shielded: one stage dropping its speculation must not cancel what the other awaits."""

    def __init__(self, states: SharedStates, audio: np.ndarray) -> None:
        self.states = states
        self.encoding = asyncio.ensure_future(states.asr.encode(audio, FINAL))

    async def frames(self) -> torch.Tensor:
        return self.states.frames(await asyncio.shield(self.encoding))

    async def transcript(self) -> Transcript:
        return await self.states.asr.decode(await asyncio.shield(self.encoding), FINAL)
