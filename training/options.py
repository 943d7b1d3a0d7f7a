"""Command-line options shared by training's commands (emo-train, emo-eval, calibrate, the ablations): the
library never parses a command line."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_data_options(p: argparse.ArgumentParser) -> None:
    """``--data`` and ``--cache``, for every command that reads the corpora."""
    p.add_argument("--data", type=Path, default=None,
                   help="folder with meld/ and ravdess/ (default: $EMO_STREAM_DATA or ../shared/data beside the repo)")
    p.add_argument("--cache", type=Path, default=None,
                   help="feature cache (default: $EMO_STREAM_CACHE, .cache/ of the checkout or ~/.cache/emo-stream)")
