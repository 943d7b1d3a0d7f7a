"""Audio augmentation on feature frames matches what the same change does to the waveform."""

from __future__ import annotations

import math

import torch

from emostream.models.collate import UtteranceInput, collate
from emostream.models.features import FeatureExtractor, FeatureSpec
from emostream.models.interface import ModelDims
from emostream.training.augment import augment_audio
from emostream.training.runs import class_weights


def _tone() -> torch.Tensor:
    t = torch.arange(16000) / 16000
    return 0.2 * torch.sin(2 * math.pi * 220 * t) + 0.05 * torch.sin(2 * math.pi * 1330 * t)


def test_gain_on_frames_equals_gain_on_waveform() -> None:
    spec = FeatureSpec()
    extractor = FeatureExtractor(spec)
    loud, mask = extractor([_tone()])
    quiet, _ = extractor([_tone() * 0.5])  # -6.02 dB
    dims = ModelDims(num_classes=7, audio_dim=spec.dim, text_dim=4, context_size=0)
    batch = collate([UtteranceInput(audio=loud[0][mask[0]], sentence=None, tokens=None)], dims)
    gen = torch.Generator().manual_seed(0)
    draw = (torch.rand(1, generator=torch.Generator().manual_seed(0)) * 2 - 1).item()  # what augment_audio draws
    gain_db = 20 * math.log10(0.5) / draw
    out = augment_audio(batch, spec, gain_db, 1.0, gen)
    assert torch.allclose(out.audio[0], quiet[0][mask[0]], atol=1e-2)


def test_crop_keeps_a_contiguous_part_of_the_valid_frames() -> None:
    spec = FeatureSpec()
    dims = ModelDims(num_classes=7, audio_dim=spec.dim, text_dim=4, context_size=0)
    items = [UtteranceInput(audio=torch.randn(n, spec.dim), sentence=None, tokens=None) for n in (100, 40)]
    batch = collate(items, dims)
    out = augment_audio(batch, spec, 0.0, 0.5, torch.Generator().manual_seed(1))
    for i, n in enumerate((100, 40)):
        kept = out.audio_mask[i].nonzero().flatten()
        assert n // 2 <= len(kept) <= n and kept.max() < n
        assert torch.equal(kept, torch.arange(kept[0], kept[-1] + 1))  # contiguous
        assert torch.equal(out.audio[i, kept], batch.audio[i, kept]) and not out.audio[i, ~out.audio_mask[i]].any()


def test_class_weights() -> None:
    y = torch.tensor([0, 0, 0, 1]).numpy()
    assert torch.allclose(class_weights(y, 3, "balanced"), torch.tensor([4 / 9, 4 / 3, 0.0]))
    assert torch.allclose(class_weights(y, 3, "sqrt"), torch.tensor([2 / 3, (4 / 3) ** 0.5, 0.0]))
    assert class_weights(y, 3, "none") is None
