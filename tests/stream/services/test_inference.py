"""The inference service: per-modality scores equal to a full pass per modality, and batches across streams that
hold no lone request back (the shipped bundle's model)."""

from __future__ import annotations

import asyncio

import pytest
import torch

from emostream.models.bundle import DEFAULT_BUNDLE, load_bundle
from emostream.models.collate import UtteranceInput, collate
from emostream.stream.services.inference import EmotionClassifier, InferenceService


@pytest.mark.parametrize("with_tokens", [False, True])
def test_scores_equal_three_full_passes_for_every_mix_of_modalities(with_tokens):
    """The shipped model gives all three from one pass of its branches (``modality_logits``); a full pass per
    modality gives the same, with token states (its tuned text layers) or a sentence vector alone."""
    bundle = load_bundle(DEFAULT_BUNDLE)
    classifier = EmotionClassifier(bundle, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    dims = bundle.meta.dims
    sentence = torch.nn.functional.normalize(torch.randn(dims.text_dim, generator=g), dim=0)
    tokens = torch.randn(12, dims.text_dim, generator=g) if with_tokens else None
    items = [
        UtteranceInput(torch.randn(80, dims.audio_dim, generator=g) * 5, sentence, tokens, "a"),  # both
        UtteranceInput(torch.randn(60, dims.audio_dim, generator=g) * 5, None, None, "b"),  # audio only (an estimate)
        UtteranceInput(None, sentence, tokens, "c"),  # text only
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


CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    torch.set_num_threads(1)
    return EmotionClassifier(load_bundle(DEFAULT_BUNDLE, CPU), CPU)


def items(classifier: EmotionClassifier, n: int) -> list[UtteranceInput]:
    dims, gen = classifier.bundle.meta.dims, torch.Generator().manual_seed(7)
    return [UtteranceInput(audio=torch.randn(60 + 20 * i, dims.audio_dim, generator=gen), sentence=None, tokens=None)
            for i in range(n)]


def test_requests_queued_while_the_worker_was_busy_form_one_batch_with_their_own_results(classifier):
    batch = items(classifier, 6)

    async def run() -> tuple[list, int, int]:
        service = InferenceService(classifier, max_batch=32, max_wait_ms=0)
        results = await asyncio.gather(*(service.classify(item) for item in batch))
        await service.close()
        return results, service.batches, service.items

    results, batches, count = asyncio.run(run())
    assert (batches, count) == (1, 6)  # all six were queued before the worker first ran: no wait was needed
    for item, result in zip(batch, results, strict=True):
        (alone,) = classifier.classify([item])
        assert result["audio"] is not None and result["text"] is None
        assert result["fused"] == pytest.approx(alone["fused"], abs=1e-5)  # padding beside others changes nothing


def test_max_wait_ms_holds_the_first_request_for_company(classifier):
    first, second = items(classifier, 2)

    async def run() -> tuple[int, int]:
        service = InferenceService(classifier, max_batch=32, max_wait_ms=2000)
        early = asyncio.ensure_future(service.classify(first))
        await asyncio.sleep(0.05)  # well inside the 2 s the first request is held
        await asyncio.gather(early, service.classify(second))
        await service.close()
        return service.batches, service.items

    assert asyncio.run(run()) == (1, 2)


def test_a_negative_wait_is_refused_by_name():
    from emostream.stream.config import ModelConfig

    with pytest.raises(ValueError, match=r"model\.max_wait_ms"):
        ModelConfig(max_wait_ms=-1)
