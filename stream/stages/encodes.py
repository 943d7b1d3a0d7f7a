"""Per stream: one encoder pass per utterance cut, shared by the features and the final decode.

Both stages ask for the pass of the same cut (``Ending.key``: same utterance, end and audio), each at its own
time; whichever asks first starts it (``SharedEncoder.start``: in this process or on the cluster's ASR replica)
and the other joins it. An entry is let go once both have asked, and at most ``KEEP`` cuts are held (a cut whose
speech resumed is never asked for twice).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import numpy as np
import torch

from emostream.stream.messages import Transcript
from emostream.stream.services.interface import OnePass, SharedEncoder

CONSUMERS = 2  # the features stage and the transcription stage
KEEP = 8


class SharedEncodes:
    def __init__(self, encoder: SharedEncoder) -> None:
        self.encoder = encoder
        self._entries: OrderedDict[Hashable, tuple[OnePass, list[int]]] = OrderedDict()
        self.encodes = 0  # encoder passes started: one per utterance when the stages agree on the cut

    def _pass(self, key: Hashable, audio: np.ndarray) -> OnePass:
        if key not in self._entries:
            self.encodes += 1
            self._entries[key] = (self.encoder.start(audio), [0])
            while len(self._entries) > KEEP:
                self._entries.popitem(last=False)
        one, asked = self._entries[key]
        asked[0] += 1
        if asked[0] == CONSUMERS:
            del self._entries[key]
        return one

    async def frames(self, key: Hashable, audio: np.ndarray) -> torch.Tensor:
        """The bundle's frames for the cut, from its shared pass."""
        return await self._pass(key, audio).frames()

    async def transcript(self, key: Hashable, audio: np.ndarray) -> Transcript:
        """The final decode of the cut, from its shared pass."""
        return await self._pass(key, audio).transcript()
