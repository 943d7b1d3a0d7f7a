"""Utterance-level acoustic functionals (openSMILE's eGeMAPS v02), appended to every frame of an utterance.

eGeMAPS is the standard cross-corpus baseline of speech emotion research: 88 statistics of pitch, loudness, voice
quality and spectral shape over the whole utterance, designed to mean the same thing in any language and studio.
Beside Whisper's encoder states they lift leave-one-corpus-out recall (docs/cross_corpus.md). They are computed by
openSMILE itself (PyPI ``opensmile``, offline, a few milliseconds per utterance) and broadcast to each frame, so
every model that pools frames sees them without a second input: a frame's mean carries them, its spread is zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from emostream.models.packaged import MissingModel

FUNCTIONAL_SETS: dict[str, int] = {"egemaps": 88}  # name -> values per utterance
_MIN_SAMPLES = 1600  # openSMILE needs a few frames; shorter audio is zero-padded to 100 ms


class Functionals:
    """Waveforms (16 kHz float) → ``(B, dim)`` functionals of each one."""

    def __init__(self, name: str, sample_rate: int = 16000) -> None:
        if name not in FUNCTIONAL_SETS:
            raise ValueError(f"unknown functionals {name!r}; known: {', '.join(FUNCTIONAL_SETS)}")
        try:
            import opensmile
        except ImportError:
            raise MissingModel("this bundle's eGeMAPS functionals need openSMILE (audEERING research licence: "
                               "non-commercial use only): pip install 'emo-stream[egemaps]'") from None
        self.dim = FUNCTIONAL_SETS[name]
        self.sample_rate = sample_rate
        self.smile: Any = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                          feature_level=opensmile.FeatureLevel.Functionals)

    def __call__(self, waveforms: list[torch.Tensor]) -> torch.Tensor:
        rows = []
        for w in waveforms:
            audio = w.detach().cpu().numpy().astype(np.float32, copy=False)
            if len(audio) < _MIN_SAMPLES:
                audio = np.pad(audio, (0, _MIN_SAMPLES - len(audio)))
            values = self.smile.process_signal(audio, self.sample_rate).to_numpy(dtype=np.float32)[0]
            rows.append(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0))
        return torch.from_numpy(np.stack(rows))


class WithFunctionals:
    """A frame extractor whose frames also carry the utterance's functionals: ``(B, T, dim + functionals)``."""

    def __init__(self, frames: Any, functionals: Functionals) -> None:
        self.frames, self.functionals = frames, functionals

    def __call__(self, waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, mask = self.frames(waveforms)
        extra = self.functionals(waveforms).to(feats.device, feats.dtype)
        extra = extra[:, None, :].expand(-1, feats.shape[1], -1) * mask.unsqueeze(-1).to(feats.dtype)
        return torch.cat([feats, extra], dim=-1), mask
