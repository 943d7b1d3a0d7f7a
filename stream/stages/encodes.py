"""Per stream: one encoder pass per utterance cut, shared by the features and the final decode.

Both stages ask for the encoding of the same cut (``Ending.key``: same utterance, end and audio), each at its
own time; whichever asks first starts the encode and the other joins it. An entry is let go once both have
asked, and at most ``KEEP`` cuts are held (a cut whose speech resumed is never asked for twice).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np
import torch

from emostream.stream.messages import Transcript
from emostream.stream.services.asr import FINAL
from emostream.stream.services.shared_states import SharedStates
from emostream.stream.services.whisper_engine import Encoding

CONSUMERS = 2  # the features stage and the transcription stage
KEEP = 8


class SharedEncodes:
    def __init__(self, states: SharedStates) -> None:
        self.states = states
        self._entries: OrderedDict[Hashable, tuple[asyncio.Task[Encoding], list[int]]] = OrderedDict()
        self.encodes = 0  # encoder passes started: one per utterance when the stages agree on the cut

    async def encoding(self, key: Hashable, audio: np.ndarray) -> Encoding:
        if key not in self._entries:
            self.encodes += 1
            self._entries[key] = (asyncio.ensure_future(self.states.asr.encode(audio, FINAL)), [0])
            while len(self._entries) > KEEP:
                self._entries.popitem(last=False)
        task, asked = self._entries[key]
        asked[0] += 1
        if asked[0] == CONSUMERS:
            del self._entries[key]
        # Shielded: one stage dropping its speculation must not cancel the encode the other one awaits.
        return await asyncio.shield(task)

    async def frames(self, key: Hashable, audio: np.ndarray) -> torch.Tensor:
        """The bundle's frames for the cut: the shared encode's states, and the utterance's functionals where the
        bundle reads them (openSMILE, in a thread while the encode runs: tens of milliseconds of its own)."""
        if self.states.functionals is None:
            return self.states.frames(await self.encoding(key, audio))
        encoding, values = await asyncio.gather(
            self.encoding(key, audio), asyncio.to_thread(self.states.functionals, [torch.from_numpy(audio)]))
        return self.states.with_functionals(self.states.frames(encoding), values[0])

    async def transcript(self, key: Hashable, audio: np.ndarray) -> Transcript:
        """The final decode of the cut, from its shared encoder pass."""
        return await self.states.asr.decode(await self.encoding(key, audio), FINAL)
