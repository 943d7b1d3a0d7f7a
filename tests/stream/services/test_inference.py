"""The inference service's shortcut: single-modality passes only for rows with both modalities."""

from __future__ import annotations

import torch

from emostream.models.bundle import DEFAULT_BUNDLE, load_bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.stream.services.inference import EmotionClassifier


def test_scores_equal_three_full_passes_for_every_mix_of_modalities():
    bundle = load_bundle(DEFAULT_BUNDLE)
    classifier = EmotionClassifier(bundle, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    dims = bundle.meta.dims
    sentence = torch.nn.functional.normalize(torch.randn(dims.text_dim, generator=g), dim=0)
    items = [
        UtteranceInput(torch.randn(80, dims.audio_dim, generator=g) * 5, sentence, None, "a"),  # both
        UtteranceInput(torch.randn(60, dims.audio_dim, generator=g) * 5, None, None, "b"),  # audio only (an estimate)
        UtteranceInput(None, sentence, None, "c"),  # text only
    ]
    got = classifier.classify(items)
    batch = collate(items, bundle.meta.dims)
    with torch.inference_mode():
        full = {"fused": bundle.model(batch), "audio": bundle.model(batch.with_modalities(audio=True, text=False)),
                "text": bundle.model(batch.with_modalities(audio=False, text=True))}
    assert [{k: v is None for k, v in r.items()} for r in got] == [
        {"fused": False, "audio": False, "text": False},
        {"fused": False, "audio": False, "text": True},
        {"fused": False, "audio": True, "text": False},
    ]
    for i, row in enumerate(got):
        for kind, probs in row.items():
            if probs is not None:
                expected = full[kind][i].softmax(-1)
                assert torch.allclose(torch.tensor([probs[label] for label in classifier.labels]), expected, atol=1e-5)
