"""The baseline's learned readings of an utterance's frames (``audio_pool``: attentive statistics, a small
transformer): what they reduce to, that padding and a missing voice do not leak in, and that training moves them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.models.baseline import AUDIO_POOLS, LateFusionBaseline
from emostream.models.blocks import AttentiveStatsPool, masked_mean, masked_std
from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import ModelDims
from emostream.training.config import BranchTraining
from emostream.training.train import fit_branch

DIMS = ModelDims(num_classes=7, audio_dim=12, text_dim=16, context_size=0)


def test_attentive_pool_with_flat_scores_is_mean_and_std() -> None:
    """Equal weights for every frame: attentive statistics pooling is the plain mean and standard deviation."""
    torch.manual_seed(0)
    pool = AttentiveStatsPool(12)
    torch.nn.init.zeros_(pool.score.weight)
    x, mask = torch.randn(3, 30, 12) * 2 + 1, torch.arange(30).unsqueeze(0) < torch.tensor([[5], [30], [17]])
    torch.testing.assert_close(pool(x, mask), torch.cat([masked_mean(x, mask), masked_std(x, mask)], -1))


@pytest.mark.parametrize("kind", [k for k in AUDIO_POOLS if k != "stats"])
def test_learned_pools_ignore_padding_and_a_missing_voice(kind: str) -> None:
    torch.manual_seed(0)
    model = LateFusionBaseline(DIMS, hidden=8, audio_pool=kind, pool_width=16).eval()
    short, long = torch.randn(9, 12), torch.randn(80, 12) * 3
    alone = collate([UtteranceInput(audio=short, sentence=None, tokens=None)], DIMS)
    batch = collate([UtteranceInput(audio=short, sentence=None, tokens=None),
                     UtteranceInput(audio=long, sentence=None, tokens=None),
                     UtteranceInput(audio=None, sentence=torch.randn(16), tokens=None)], DIMS)
    with torch.no_grad():
        audio_alone, _ = model.branch_logits(alone)
        audio, _ = model.branch_logits(batch)
        fused = model(batch)
    torch.testing.assert_close(audio[0], audio_alone[0], atol=1e-5, rtol=1e-5)  # padded to 80 frames: same
    assert bool(torch.isfinite(fused).all())  # the row without a voice: no NaN from attending to nothing
    with pytest.raises(ValueError, match="audio_pool must be one of stats, attentive, transformer"):
        LateFusionBaseline(DIMS, audio_pool="max")


def test_training_moves_the_learned_pool_with_the_head() -> None:
    """Which class a clip is depends on a few loud frames among many quiet ones; fit_branch trains the pooling
    along with the audio head, and the branch learns it."""
    gen = torch.Generator().manual_seed(0)
    model = LateFusionBaseline(DIMS, hidden=16, dropout=0.0, audio_pool="attentive")
    y = np.arange(140) % 2
    clips = []
    for label in y:
        frames = torch.randn(40, 12, generator=gen) * 0.1
        frames[:3, 0] += 3.0 if label else -3.0  # three frames carry the class
        clips.append(UtteranceInput(audio=frames, sentence=None, tokens=None))
    before = [p.detach().clone() for p in model.frame_pool.parameters()]
    cfg = BranchTraining(epochs=12, batch_size=16, lr=1e-2, weight_decay=0.0, patience=6, class_weighting="none")

    def accuracy() -> float:
        model.eval()
        with torch.no_grad():
            audio, _ = model.branch_logits(collate(clips, DIMS))
        return float((audio.argmax(1).numpy() == y).mean())

    fit_branch(model, "audio", clips, y, accuracy, cfg, seed=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.frame_pool.parameters(), strict=True))
    assert accuracy() > 0.9
