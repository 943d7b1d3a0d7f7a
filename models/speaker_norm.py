"""Speaker normalisation: each speaker's acoustic frames standardised by that speaker's own running statistics.

Emotion is a change from how a person usually sounds. Held-out speakers differ from the training speakers in
voice, microphone and level far more than one speaker's emotions differ from each other, so a classifier of raw
frames partly learns voices (docs/training.md, "Speaker normalisation"). Standardising every frame by its
speaker's mean and variance removes most of that. The statistics are running sums over the speaker's frames
heard so far (past only, as a live stream has them), shrunk toward the training corpus's statistics by
``prior_frames`` pseudo-frames, so that a speaker's first utterance is normalised by the corpus and later ones
increasingly by the speaker.

The one implementation used by training, evaluation and the stream.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

VAR_FLOOR = 1e-4  # a speaker with a near-constant feature would otherwise divide by zero


@dataclass(frozen=True)
class SpeakerPrior:
    """Corpus statistics the running ones start from: mean and second moment of the training frames, weighted as
    ``frames`` frames of evidence."""

    frames: float
    mean: torch.Tensor  # (D,)
    second: torch.Tensor  # (D,) mean of squares

    @classmethod
    def fit(cls, frames: Sequence[torch.Tensor], prior_frames: float) -> SpeakerPrior:
        cat = torch.cat(list(frames)).double()
        return cls(prior_frames, cat.mean(0).float(), (cat**2).mean(0).float())

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "mean": self.mean.tolist(), "second": self.second.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeakerPrior:
        if set(data) != {"frames", "mean", "second"} or len(data["mean"]) != len(data["second"]):
            raise ValueError("speaker_norm needs 'frames' and equally long 'mean' and 'second' lists")
        if not float(data["frames"]) > 0:
            raise ValueError(f"speaker_norm frames must be > 0, not {data['frames']}")
        return cls(float(data["frames"]), torch.tensor(data["mean"], dtype=torch.float32),
                   torch.tensor(data["second"], dtype=torch.float32))


class SpeakerNorm:
    """Running per-speaker frame statistics, and frames standardised by them.

    ``observe`` adds an utterance's frames to its speaker's sums; ``apply`` standardises frames with the sums so
    far. The stream observes each utterance, then applies (past and present frames, never future ones);
    training observes a whole speaker first (``normalise_all``). Memory: two vectors per speaker.
    """

    def __init__(self, prior: SpeakerPrior) -> None:
        self.prior = prior
        self.sums: dict[Hashable, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def observe(self, speaker: Hashable, frames: torch.Tensor) -> None:
        s, s2, n = self.sums.get(speaker, (torch.zeros_like(self.prior.mean), torch.zeros_like(self.prior.mean), 0.0))
        f = frames.double()
        self.sums[speaker] = (s + f.sum(0).float(), s2 + (f**2).sum(0).float(), n + len(frames))

    def apply(self, speaker: Hashable, frames: torch.Tensor) -> torch.Tensor:
        p = self.prior
        s, s2, n = self.sums.get(speaker, (0.0, 0.0, 0.0))
        mean = (s + p.frames * p.mean) / (n + p.frames)
        var = (s2 + p.frames * p.second) / (n + p.frames) - mean**2
        return (frames - mean) / var.clamp(min=VAR_FLOOR).sqrt()

    def __call__(self, speaker: Hashable, frames: torch.Tensor) -> torch.Tensor:
        """What the stream does with each utterance: observe it, then standardise it."""
        self.observe(speaker, frames)
        return self.apply(speaker, frames)


def normalise_all(frames: Sequence[torch.Tensor], speakers: Sequence[Hashable],
                  prior: SpeakerPrior) -> list[torch.Tensor]:
    """Training inputs: every utterance standardised by all of its speaker's frames (the steady state a stream
    reaches after a speaker has talked for a while)."""
    norm = SpeakerNorm(prior)
    for f, s in zip(frames, speakers, strict=True):
        norm.observe(s, f)
    return [norm.apply(s, f) for f, s in zip(frames, speakers, strict=True)]


def normalise_running(frames: Sequence[torch.Tensor], speakers: Sequence[Hashable], prior: SpeakerPrior,
                      order: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Evaluation inputs, as a stream would have them: utterances heard in ``order`` (default: as given), each
    standardised by its speaker's frames up to and including it."""
    norm, out = SpeakerNorm(prior), [torch.empty(0)] * len(frames)
    for i in order if order is not None else range(len(frames)):
        out[i] = norm(speakers[i], frames[i])
    return out
