"""The test suite. ``REPO_ROOT`` is the checkout, also when ``emostream`` itself is installed elsewhere."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
