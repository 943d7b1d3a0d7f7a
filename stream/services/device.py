"""Where the models run: the GPU when there is one (or when asked), else the CPU."""

from __future__ import annotations

import torch

from emostream.stream.errors import UserError


def resolve_device(name: str, setting: str = "model.device") -> torch.device:
    """``auto`` is CUDA when torch sees a GPU, else the CPU; asking for CUDA without one is an error, not a silent
    CPU run. ``setting`` names where the value came from, for the message."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{setting} {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{setting} is {name!r} but no CUDA GPU is available; use auto or cpu")
    return device
