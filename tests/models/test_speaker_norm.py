"""Speaker normalisation: the running statistics are exact, past-only, per speaker, and shrink toward the prior."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from emostream.models.bundle import DEFAULT_BUNDLE, read_meta
from emostream.models.speaker_norm import SpeakerNorm, SpeakerPrior, normalise_all, normalise_running
from emostream.stream.messages import Acoustic, Utterance
from emostream.stream.stages.speaker_normalisation import SpeakerNormalisation
from emostream.training.data.records import Utterance as Record
from emostream.training.speaker_frames import heard_frames, new_domain_frames, normalised_splits


def _frames(seed: int, n: int, shift: float, scale: float, dim: int = 6) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * scale + shift


def _expected(heard: list[torch.Tensor], prior: SpeakerPrior, frames: torch.Tensor) -> torch.Tensor:
    """The definition, computed directly: the prior as ``prior.frames`` pseudo-frames plus every frame heard."""
    cat = torch.cat(heard).double()
    n, w = len(cat), prior.frames
    mean = (cat.sum(0) + w * prior.mean.double()) / (n + w)
    var = ((cat**2).sum(0) + w * prior.second.double()) / (n + w) - mean**2
    return ((frames.double() - mean) / var.sqrt()).float()


def test_running_statistics_match_the_definition_and_stay_per_speaker() -> None:
    prior = SpeakerPrior.fit([_frames(0, 500, 0.0, 1.0)], prior_frames=50.0)
    a1, a2, b1 = _frames(1, 40, 3.0, 2.0), _frames(2, 60, 3.0, 2.0), _frames(3, 30, -4.0, 0.5)
    norm = SpeakerNorm(prior)
    out_a1 = norm("A", a1)
    out_b1 = norm("B", b1)
    out_a2 = norm("A", a2)
    torch.testing.assert_close(out_a1, _expected([a1], prior, a1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_b1, _expected([b1], prior, b1), rtol=1e-4, atol=1e-4)  # A's frames not in it
    torch.testing.assert_close(out_a2, _expected([a1, a2], prior, a2), rtol=1e-4, atol=1e-4)


def test_a_long_heard_speaker_is_standardised_and_a_new_one_follows_the_prior() -> None:
    prior = SpeakerPrior.fit([_frames(0, 2000, 0.0, 1.0)], prior_frames=10.0)
    loud = _frames(4, 5000, 5.0, 3.0)
    out = normalise_all([loud], ["x"], prior)[0]
    assert out.mean(0).abs().max() < 0.05 and (out.std(0) - 1).abs().max() < 0.05  # the speaker's own scale
    big_prior = SpeakerPrior(1e9, prior.mean, prior.second)
    first = SpeakerNorm(big_prior)("new", loud[:20])
    torch.testing.assert_close(first, (loud[:20] - prior.mean) / (prior.second - prior.mean**2).sqrt(),
                               rtol=1e-3, atol=1e-3)


def test_running_normalisation_never_uses_later_utterances() -> None:
    prior = SpeakerPrior.fit([_frames(0, 300, 0.0, 1.0)], prior_frames=20.0)
    clips = [_frames(10 + i, 30, 1.0, 1.0) for i in range(5)]
    changed = [*clips[:3], _frames(99, 30, -8.0, 5.0), _frames(98, 30, 9.0, 0.1)]
    order = [2, 0, 4, 1, 3]
    before = normalise_running(clips, ["s"] * 5, prior, order)
    after = normalise_running(changed, ["s"] * 5, prior, order)
    for i in (2, 0):  # heard before the changed clips 4 and 3
        torch.testing.assert_close(before[i], after[i])
    assert not torch.allclose(before[1], after[1])  # heard after clip 4, so it depends on it


def test_prior_round_trips_through_the_bundle_format() -> None:
    prior = SpeakerPrior.fit([_frames(0, 100, 1.0, 2.0)], prior_frames=500.0)
    back = SpeakerPrior.from_dict(prior.to_dict())
    assert back.frames == 500.0
    torch.testing.assert_close(back.mean, prior.mean)
    torch.testing.assert_close(back.second, prior.second)
    shipped = read_meta(DEFAULT_BUNDLE).speaker_norm
    assert shipped is not None and len(shipped.mean) == read_meta(DEFAULT_BUNDLE).features.dim


def _record(speaker: str, corpus: str = "test") -> Record:
    return Record(audio=None, text="", label="neutral", speaker=speaker, dialogue="d", turn=0, corpus=corpus)


def test_training_frames_use_the_whole_speaker_and_scored_frames_a_fixed_random_order() -> None:
    raw = {"train": [_frames(i, 20, float(i % 2), 1.0) for i in range(6)],
           "dev": [_frames(20 + i, 20, 2.0, 1.0) for i in range(6)]}
    utts = {"train": [_record(f"t{i % 2}") for i in range(6)], "dev": [_record(f"d{i % 3}") for i in range(6)]}
    prior, frames = normalised_splits(raw, utts, 100.0)
    assert prior is not None
    torch.testing.assert_close(frames["train"], normalise_all(raw["train"], [u.speaker for u in utts["train"]], prior))
    assert all(torch.equal(a, b) for a, b in zip(frames["dev"], heard_frames(raw["dev"], utts["dev"], prior),
                                                 strict=True))  # the same seeded order every time
    in_order = normalise_running(raw["dev"], [u.speaker for u in utts["dev"]], prior)
    assert any(not torch.allclose(a, b) for a, b in zip(frames["dev"], in_order, strict=True))  # shuffled
    none_prior, untouched = normalised_splits(raw, utts, 0.0)
    assert none_prior is None and all(torch.equal(a, b) for a, b in zip(untouched["dev"], raw["dev"], strict=True))


def test_new_domain_frames_are_first_utterances_under_the_other_corpora_prior() -> None:
    """A clip of one corpus is standardised by a prior fitted on the other corpora's frames alone, as its speaker's
    first utterance: the offset between the domains stays visible, which the joint prior would hide."""
    frames = [_frames(i, 30, 3.0, 1.0) for i in range(4)] + [_frames(10 + i, 30, -3.0, 2.0) for i in range(4)]
    utts = [_record(f"a{i}", corpus="studio") for i in range(4)] + [_record(f"b{i}", corpus="phone") for i in range(4)]
    joint = SpeakerPrior.fit(frames, 50.0)
    heard = new_domain_frames(frames, utts, joint)
    phone_prior = SpeakerPrior.fit(frames[4:], 50.0)
    torch.testing.assert_close(heard[0], _expected([frames[0]], phone_prior, frames[0]))
    studio_prior = SpeakerPrior.fit(frames[:4], 50.0)
    torch.testing.assert_close(heard[5], _expected([frames[5]], studio_prior, frames[5]))
    under_joint = [SpeakerNorm(joint)(u.speaker, f) for f, u in zip(frames[:4], utts[:4], strict=True)]
    assert float(torch.cat(heard[:4]).mean()) > 1.0 > float(torch.cat(under_joint).mean())
    again = new_domain_frames([*frames, frames[0]], [*utts, utts[0]], joint)  # a speaker's second clip: running
    torch.testing.assert_close(again[-1], _expected([frames[0], frames[0]], phone_prior, frames[0]))


def test_stream_stage_keeps_statistics_per_speaker_of_its_stream() -> None:
    prior = SpeakerPrior.fit([_frames(0, 300, 0.0, 1.0)], prior_frames=30.0)
    stage = SpeakerNormalisation(prior)
    reference = SpeakerNorm(prior)

    def acoustic(speaker: str, frames: torch.Tensor, seq: int) -> Acoustic:
        utt = Utterance(stream_id="s", utterance_id=f"u{seq}", seq=seq, channel=0, speaker=speaker, start_s=0.0,
                        end_s=1.0, audio=np.zeros(16000, np.float32), audio_end_wall=0.0,
                        endpoint_wall=0.0, split=False)
        return Acoustic(utt, frames, {"features": 1.0})

    for seq, (speaker, frames) in enumerate([("caller", _frames(5, 40, 2.0, 1.5)), ("agent", _frames(6, 40, -1.0, 1.0)),
                                             ("caller", _frames(7, 40, 2.0, 1.5))]):
        (out,) = asyncio.run(stage.process(acoustic(speaker, frames, seq)))
        torch.testing.assert_close(out.frames, reference(speaker, frames))
        assert out.latency_ms["features"] == 1.0 and out.latency_ms["speaker_norm"] >= 0


@pytest.mark.parametrize("bad", [{"frames": 10, "mean": [0.0]}, {"frames": -1, "mean": [0.0], "second": [1.0]}])
def test_bad_prior_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="speaker_norm"):
        SpeakerPrior.from_dict(bad)
