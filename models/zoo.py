"""Imports every architecture module so that each registers itself with :func:`register`."""

from emostream.models import baseline  # noqa: F401
