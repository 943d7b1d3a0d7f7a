"""Corpus loaders: each turns a corpus on disk into :class:`Utterance` records."""

from emostream.training.data.records import Utterance

__all__ = ["Utterance"]
