"""The baseline's ensembles (``audio_members``, ``text_members``): what they answer, that a temperature folds into
them exactly, that their members start as a model seeded with theirs would, that one branch's members do not move
the other branch, and that weights saved before the text branch was one module still load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emostream.models.baseline import LateFusionBaseline
from emostream.models.blocks import masked_mean, masked_std
from emostream.models.collate import UtteranceInput, collate
from emostream.models.interface import ModelDims
from emostream.training.config import BranchTraining
from emostream.training.temperature import calibrate_branches
from emostream.training.train import fit_branch, redraw

DIMS = ModelDims(num_classes=7, audio_dim=12, text_dim=16, context_size=0)


def _clips(n: int, seed: int = 0) -> list[UtteranceInput]:
    gen = torch.Generator().manual_seed(seed)
    return [UtteranceInput(audio=torch.randn(20, 12, generator=gen) * 2, sentence=torch.randn(16, generator=gen),
                           tokens=None) for _ in range(n)]


def _model(seed: int, **hparams: float) -> LateFusionBaseline:
    torch.manual_seed(seed)
    return LateFusionBaseline(DIMS, hidden=8, **hparams).eval()


def test_ensemble_answers_the_mean_of_its_members_log_probabilities() -> None:
    model = _model(0, audio_members=3)
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


@pytest.mark.parametrize("branch", ["audio", "text"])
def test_a_branch_trains_the_same_whatever_the_other_branch_is(branch: str) -> None:
    """Training one branch draws nothing for the other (its dropout is off): the audio branch ends the same beside
    one text branch or three, the text branch the same beside one audio head or three, so a recipe's audio
    figures do not move when only its text settings change (and the other way round)."""
    clips, y = _clips(48), np.arange(48) % 7
    cfg = BranchTraining(epochs=3, batch_size=16, lr=1e-2, weight_decay=0.0, patience=3, class_weighting="none")
    other = "text_members" if branch == "audio" else "audio_members"
    trained = []
    for members in (1, 3):
        model = _model(0, dropout=0.5, **{other: members})
        before = [p.detach().clone() for p in getattr(model, f"{branch}_head").parameters()]
        fit_branch(model, branch, clips, y, lambda: 0.0, cfg, seed=1)
        after = list(getattr(model, f"{branch}_head").parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
        trained.append(after)
    for a, b in zip(*trained, strict=True):
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


def test_text_ensemble_answers_the_mean_of_its_members_and_leaves_the_audio_head_alone() -> None:
    single, model = _model(3), _model(3, text_members=3)
    batch = collate(_clips(5), DIMS)
    with torch.no_grad():
        audio, text = model.branch_logits(batch)
        each = []
        for i in range(3):
            with model.text_head.only(i):
                each.append(model.branch_logits(batch)[1])
        single_audio, single_text = single.branch_logits(batch)
    torch.testing.assert_close(text, torch.stack([e.log_softmax(-1) for e in each]).mean(0))
    torch.testing.assert_close(each[0], single_text)  # member 0 is the single branch
    torch.testing.assert_close(audio, single_audio)
    assert not torch.allclose(each[1], each[2])
    temps = calibrate_branches(model, _clips(40, seed=1), np.arange(40) % 7, _clips(40, seed=1), np.arange(40) % 7)
    with torch.no_grad():
        after = model.branch_logits(batch)[1]
    torch.testing.assert_close(after.softmax(-1), (text / temps["text"]).softmax(-1), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="text_members must be >= 1"):
        LateFusionBaseline(DIMS, text_members=0)


def test_weights_of_the_earlier_layout_load_into_todays() -> None:
    """Bundles up to v9 saved the text MLP as ``text_head.<i>`` and the tuned layers as ``text_top``."""
    dims = ModelDims(num_classes=7, audio_dim=12, text_dim=384, context_size=0)
    model = LateFusionBaseline(dims, hidden=8, text_layers=1)
    state = model.state_dict()
    legacy = {k.replace("text_head.mlp.", "text_head.").replace("text_head.top.", "text_top."): v
              for k, v in state.items()}
    assert "text_top.layers.0.output.dense.weight" in legacy and "text_head.0.weight" in legacy
    upgraded = model.upgrade_state(legacy)
    assert upgraded.keys() == state.keys()
    assert all(upgraded[k] is state[k] for k in state)
    assert model.upgrade_state(state) is state  # today's layout passes through
