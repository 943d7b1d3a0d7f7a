"""The services of ``stream/services/interface.py`` backed by Ray Serve deployments (``models.py``), so that the
stages of a call run unchanged in an ingress replica while the models run wherever Ray placed them. Tensors travel
as NumPy arrays (``wire.py``).

A request whose model replica dies (a crash, a lost node) is sent again: Ray Serve restarts the replica or routes
to another one, so a final event is late rather than lost. After ``ATTEMPTS`` deaths in a row the error reaches
the call (which then ends with it, like any service failure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ray.exceptions import RayActorError
from ray.serve.exceptions import ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponse
from torch.nn.utils.rnn import pad_sequence

from emostream.models.collate import UtteranceInput
from emostream.models.text_encoder import TextEncoderSpec, TextEncoding
from emostream.stream.cluster.wire import from_wire, to_wire
from emostream.stream.messages import Transcript
from emostream.stream.services.inference import Scores

log = logging.getLogger(__name__)
ATTEMPTS = 4
RETRY_AFTER_S = 0.5
GONE = (RayActorError, ReplicaUnavailableError)  # the replica died or left while holding the request


async def _call(what: str, send: Callable[[], DeploymentResponse]) -> Any:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await send()
        except GONE as e:
            _retry_or_raise(what, attempt, e)
        await asyncio.sleep(RETRY_AFTER_S)
    raise AssertionError("unreachable")


def _retry_or_raise(what: str, attempt: int, error: Exception) -> None:
    if attempt == ATTEMPTS:
        raise error
    log.warning("%s: model replica lost (%s); sending the request again (%d/%d)", what, type(error).__name__,
                attempt, ATTEMPTS - 1)


class RayAsr:
    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def transcribe(self, audio: np.ndarray, priority: int) -> Transcript:
        return await _call("asr", lambda: self.handle.transcribe.remote(audio, priority))

    async def close(self) -> None:
        pass


class RayStates:
    """The ``SharedEncoder`` on the cluster: an utterance's pass is one request to the ASR deployment, which
    encodes it once and returns both its final transcript and the bundle's frames (``AsrModel.one_pass``)."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    def start(self, audio: np.ndarray) -> RayPass:
        return RayPass(asyncio.ensure_future(_call("asr", lambda: self.handle.one_pass.remote(audio))))


class RayPass:
    """Both halves await the one reply shielded: one stage dropping its speculation must not cancel the other's."""

    def __init__(self, reply: asyncio.Future[tuple[Transcript, np.ndarray]]) -> None:
        self.reply = reply

    async def frames(self) -> torch.Tensor:
        return from_wire((await asyncio.shield(self.reply))[1])

    async def transcript(self) -> Transcript:
        return (await asyncio.shield(self.reply))[0]


class RayClassifier:
    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def classify(self, item: UtteranceInput) -> Scores:
        wired = to_wire(item)
        return await _call("inference", lambda: self.handle.classify.remote(wired))

    async def close(self) -> None:
        pass


class RayExtractor:
    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def extract(self, waves: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = await asyncio.gather(*(_call("features", lambda w=w: self.handle.extract.remote(w))
                                      for w in to_wire(tuple(waves))))
        return _padded(list(from_wire(tuple(rows))))


class RayTextEncoder:
    def __init__(self, handle: DeploymentHandle, spec: TextEncoderSpec) -> None:
        self.handle, self.spec = handle, spec

    async def encode(self, texts: list[str]) -> TextEncoding:
        rows = from_wire(tuple(await asyncio.gather(*(_call("text", lambda t=t: self.handle.encode.remote(t))
                                                      for t in texts))))
        tokens, mask = _padded([r.tokens[0] for r in rows])
        return TextEncoding(torch.cat([r.sentence for r in rows]), tokens, mask)


def _padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T_i, D)`` rows → ``(B, T, D)`` zero-padded and the ``(B, T)`` mask of the real frames."""
    lengths = torch.tensor([len(r) for r in rows])
    mask = torch.arange(int(lengths.max())).unsqueeze(0) < lengths.unsqueeze(1)
    return pad_sequence(rows, batch_first=True), mask
