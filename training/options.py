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


def add_override_option(p: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): a variant of the config's recipe without a copy of the file."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="change one config key, a dotted path read as YAML (repeatable), e.g. "
                   "--set model.hparams.audio_pool=attentive --set 'text_corpora=[meld, goemotions, dailydialog]'")
