"""Acoustic feature windows (torchaudio): the one implementation shared by training and streaming.

A bundle stores its :class:`FeatureSpec`; the stream builds its extractor from that spec, so a model
always sees the features it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torchaudio

FeatureKind = Literal["mfcc", "mel"]


@dataclass(frozen=True)
class FeatureSpec:
    """What the acoustic front end computes. Frames are ``hop_ms`` apart; at most ``max_frames`` are kept."""

    kind: FeatureKind = "mfcc"
    sample_rate: int = 16000
    n_mfcc: int = 40
    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0
    deltas: bool = True
    max_frames: int = 1000

    @property
    def dim(self) -> int:
        base = self.n_mfcc if self.kind == "mfcc" else self.n_mels
        return base * (3 if self.deltas else 1)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"feature spec has unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
        spec = cls(**data)
        if spec.kind not in ("mfcc", "mel"):
            raise ValueError(f"feature spec kind {spec.kind!r} is not supported; use 'mfcc' or 'mel'")
        if spec.sample_rate != 16000:
            raise ValueError(f"feature spec sample_rate {spec.sample_rate} is not supported; use 16000")
        return spec


class FeatureExtractor(torch.nn.Module):
    """Waveforms (16 kHz float in [-1, 1]) → feature frames, batched.

    Frames are not normalised per utterance: level and spread carry emotion. Models normalise with
    corpus statistics (:class:`InputNorm`) stored in their weights. It is a module so that it moves
    to the GPU with ``.to(device)`` and extracts there.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.spec = spec
        n_fft = 1 << (round(spec.sample_rate * spec.win_ms / 1000) - 1).bit_length()
        mel = {
            "n_fft": n_fft,
            "win_length": round(spec.sample_rate * spec.win_ms / 1000),
            "hop_length": spec.hop_length,
            "n_mels": spec.n_mels,
        }
        if spec.kind == "mfcc":
            self.transform: torch.nn.Module = torchaudio.transforms.MFCC(
                sample_rate=spec.sample_rate, n_mfcc=spec.n_mfcc, melkwargs=mel
            )
        else:
            self.transform = torch.nn.Sequential(
                torchaudio.transforms.MelSpectrogram(sample_rate=spec.sample_rate, **mel),
                torchaudio.transforms.AmplitudeToDB(top_db=80.0),
            )

    @torch.inference_mode()
    def forward(self, waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns features ``(B, T, dim)`` and a validity mask ``(B, T)``."""
        device = next(iter(self.transform.buffers())).device
        lengths = [min(len(w) // self.spec.hop_length + 1, self.spec.max_frames) for w in waveforms]
        longest = max(len(w) for w in waveforms)
        padded = torch.zeros(len(waveforms), longest, device=device)
        for i, w in enumerate(waveforms):
            padded[i, : len(w)] = w.to(device)
        feats = self.transform(padded)  # (B, C, T)
        if self.spec.deltas:
            d1 = torchaudio.functional.compute_deltas(feats)
            feats = torch.cat([feats, d1, torchaudio.functional.compute_deltas(d1)], dim=1)
        feats = feats.transpose(1, 2)[:, : max(lengths)]  # (B, T, dim)
        mask = torch.arange(feats.shape[1], device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
        return feats * mask.unsqueeze(-1), mask


class InputNorm(torch.nn.Module):
    """Standardises feature frames with statistics of the training corpus, kept as buffers in the weights."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, feats: torch.Tensor, mask: torch.Tensor) -> None:
        """Sets the statistics from valid frames of ``(B, T, F)`` features."""
        valid = feats[mask]
        self.mean.copy_(valid.mean(dim=0))
        self.std.copy_(valid.std(dim=0).clamp(min=1e-4))

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) / self.std * mask.unsqueeze(-1).to(feats.dtype)


def utterance_stats(raw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation of frames over the valid part: ``(B, T, F)`` → ``(B, 2F)``."""
    m = mask.unsqueeze(-1).to(raw.dtype)
    count = m.sum(dim=1).clamp(min=1.0)
    mean = (raw * m).sum(dim=1) / count
    std = (((raw - mean.unsqueeze(1)) ** 2 * m).sum(dim=1) / count).sqrt()
    return torch.cat([mean, std], dim=-1)
