"""Where the corpora and the feature cache live: one place, so the CLI, tests and docs agree."""

from __future__ import annotations

import os
from pathlib import Path

# training/paths.py → the repository root when run from a checkout.
REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """``$EMO_STREAM_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("EMO_STREAM_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_cache_dir() -> Path:
    """``$EMO_STREAM_CACHE``, else ``.cache/`` of the checkout (gitignored), else ``~/.cache/emo-stream``."""
    env = os.environ.get("EMO_STREAM_CACHE")
    if env:
        return Path(env)
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".cache"
    return Path.home() / ".cache" / "emo-stream"


def require_dir(path: Path, what: str) -> Path:
    """The directory, or an error that names it and says how to point at the data."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what} not found at {path}; pass --data DIR (the folder holding meld/ and ravdess/) "
            "or set EMO_STREAM_DATA"
        )
    return path
