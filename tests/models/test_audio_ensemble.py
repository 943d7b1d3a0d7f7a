"""The baseline's audio ensemble (``audio_members``): what it answers, that a temperature folds into it exactly,
that its members start as a model seeded with theirs would, and that its text head does not depend on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.models.baseline import LateFusionBaseline
from emostream.models.blocks import masked_mean, masked_std
from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import ModelDims
from emostream.training.temperature import calibrate_branches
from emostream.training.train import redraw

DIMS = ModelDims(num_classes=7, audio_dim=12, text_dim=16, context_size=0)


def _clips(n: int, seed: int = 0) -> list[UtteranceInput]:
    gen = torch.Generator().manual_seed(seed)
    return [UtteranceInput(audio=torch.randn(20, 12, generator=gen) * 2, sentence=torch.randn(16, generator=gen),
                           tokens=None) for _ in range(n)]


def test_ensemble_answers_the_mean_of_its_members_log_probabilities() -> None:
    torch.manual_seed(0)
    model = LateFusionBaseline(DIMS, hidden=8, audio_members=3).eval()
    batch = collate(_clips(5), DIMS)
    head = model.audio_head
    with torch.no_grad():
        audio, _ = model.branch_logits(batch)
        frames = model.norm(batch.audio, batch.audio_mask)
        pooled = torch.cat([masked_mean(frames, batch.audio_mask), masked_std(frames, batch.audio_mask)], -1)
        each = [m(pooled) for m in head.members]
        with head.only(1) as member:
            second, _ = model.branch_logits(batch)
            assert head.answering is member is head.members[1]  # what fit_branch trains
        assert head.answering is head
        after, _ = model.branch_logits(batch)
    members = torch.stack([e.log_softmax(-1) for e in each])
    torch.testing.assert_close(audio, members.mean(0))
    torch.testing.assert_close(second, each[1])
    torch.testing.assert_close(after, audio)  # the whole ensemble answers again after the block
    assert not torch.allclose(each[0], each[1])  # the members start apart
    with pytest.raises(ValueError, match="audio_members must be >= 1, and 1 with a learned audio_pool"):
        LateFusionBaseline(DIMS, audio_members=2, audio_pool="attentive")


def test_members_do_not_move_the_text_head_and_redraw_as_seeded() -> None:
    """The text head starts from the same weights with one audio head or five (a finished text branch resumes);
    a member redrawn from seed s starts where the single head of a model seeded with s does."""
    torch.manual_seed(7)
    single = LateFusionBaseline(DIMS, hidden=8)
    torch.manual_seed(7)
    five = LateFusionBaseline(DIMS, hidden=8, audio_members=5)
    for a, b in zip(single.text_head.parameters(), five.text_head.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(single.audio_head.parameters(), five.audio_head.members[0].parameters(), strict=True):
        assert torch.equal(a, b)
    torch.manual_seed(9)
    seeded = LateFusionBaseline(DIMS, hidden=8)
    state = torch.get_rng_state()
    redraw(five.audio_head.members[2], 9)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator did not move
    for a, b in zip(seeded.audio_head.parameters(), five.audio_head.members[2].parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_temperature_folds_into_every_member() -> None:
    torch.manual_seed(0)
    model = LateFusionBaseline(DIMS, hidden=8, audio_members=3).eval()
    clips = _clips(40, seed=1)
    y = np.arange(40) % 7
    batch = collate(clips, DIMS)
    with torch.no_grad():
        before, _ = model.branch_logits(batch)
    temps = calibrate_branches(model, clips, y, clips, y)
    with torch.no_grad():
        after, _ = model.branch_logits(batch)
    assert temps["audio"] != 1.0
    torch.testing.assert_close(after.softmax(-1), (before / temps["audio"]).softmax(-1), atol=1e-5, rtol=1e-4)
