"""Tensors cross Ray's process boundaries as NumPy arrays (``cluster/wire.py``): the classifier's input, with its
context, goes out with no tensor left in it and comes back equal, as writable tensors."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from emostream.models.collate import PastUtterance, UtteranceInput
from emostream.stream.cluster.wire import from_wire, to_wire


def test_classifier_input_round_trips_as_numpy():
    past = tuple(PastUtterance(torch.randn(384), torch.randn(944), f"s{i}") for i in range(4))
    item = UtteranceInput(audio=torch.randn(150, 472), sentence=torch.randn(384), tokens=None, speaker="a",
                          context=past)
    wired = to_wire(item)
    assert isinstance(wired.audio, np.ndarray) and isinstance(wired.context[3].audio_stats, np.ndarray)
    data = pickle.dumps(wired, protocol=5)
    assert b"torch" not in data  # no tensor pickled, not even nested in the context
    back = from_wire(pickle.loads(data))
    assert isinstance(back, UtteranceInput) and back.tokens is None and back.speaker == "a"
    assert torch.equal(back.audio, item.audio) and torch.equal(back.sentence, item.sentence)
    assert all(torch.equal(b.sentence, p.sentence) and torch.equal(b.audio_stats, p.audio_stats) and
               b.speaker == p.speaker for b, p in zip(back.context, past, strict=True))
    back.audio[0, 0] = 1.0  # writable: a copy, not a view of the received buffer


def test_read_only_arrays_come_back_as_their_own_tensors():
    received = np.arange(6, dtype=np.float32).reshape(2, 3)
    received.flags.writeable = False  # as Ray hands over what it deserialised
    tensor = from_wire(received)
    tensor += 1
    assert received[0, 0] == 0 and tensor[0, 0] == 1
