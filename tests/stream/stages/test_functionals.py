"""Utterance functionals fed while the utterance is spoken: the same values as one pass over the whole, on the
example dialogue's real turns, through the real openSMILE."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.functionals import Functionals
from emostream.stream.messages import Acoustic, EndCandidate, PartialAudio, Utterance
from emostream.stream.stages.functionals import UtteranceFunctionals

POST_ROLL_GAP = 1440  # the early guess lacks 90 ms of the post-roll


@pytest.fixture(scope="module")
def functionals() -> Functionals:
    return Functionals("egemaps")


@pytest.fixture(scope="module")
def turn(example_dialogue) -> np.ndarray:
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    first = example_dialogue.turns[0]
    return audio[int((first.start_s - 0.2) * sr): int((first.end_s + 0.15) * sr)]


def live_threads() -> int:
    return sum(t.name == "opensmile-live" for t in threading.enumerate())


@pytest.mark.parametrize("pieces", [[1.0], [0.1, 0.35, 0.6, 0.97, 1.0], [0.5, 1.0]])
def test_fed_in_pieces_it_equals_one_pass_over_the_whole(functionals, turn, pieces):
    live = functionals.live()
    for share in pieces:
        assert live.feed(turn[: int(len(turn) * share)])
    done = live.finish(turn)
    assert done is not None
    values = done.result(timeout=30)
    assert values.shape == (88,)
    np.testing.assert_array_equal(values, functionals.values(turn))
    assert np.count_nonzero(values) > 40  # real statistics of speech, not an empty extraction


def test_a_clip_shorter_than_a_frame_is_padded_as_the_whole_pass_pads_it(functionals, turn):
    live = functionals.live()
    clip = turn[8000:8800]
    np.testing.assert_array_equal(live.finish(clip).result(timeout=30), functionals.values(clip))


def test_another_cut_is_refused_and_abort_ends_the_extraction(functionals, turn):
    before = live_threads()
    live = functionals.live()
    assert live.feed(turn[:16000])
    assert not live.feed(turn[160:20000])  # does not begin where the fed audio began
    assert live.finish(turn[:8000]) is None  # shorter than what was fed
    live.abort()
    live.result.result(timeout=30)  # the run ends (its values unused)
    assert not live.feed(turn)  # ended
    for _ in range(100):
        if live_threads() == before:
            break
        time.sleep(0.05)
    assert live_threads() == before


def test_the_stage_appends_them_fed_early_and_extracts_anew_only_a_cut_it_was_not_fed(functionals, turn):
    stage = UtteranceFunctionals(functionals)
    whole = functionals.values(turn)
    states = torch.randn(len(turn) // 320, 384)

    def utterance(uid: str, audio: np.ndarray) -> Acoustic:
        now = time.monotonic()
        return Acoustic(Utterance("s", uid, 1, 0, "customer", 0.0, 2.0, audio, now, now, False), states, {})

    def partial(uid: str, audio: np.ndarray) -> PartialAudio:
        return PartialAudio("s", uid, 1, 0, "customer", 0.0, 1.0, audio, time.monotonic())

    async def run() -> list[Acoustic]:
        outs = []
        # Spoken, paused, cut exactly: the endpoint finds the extraction done.
        for item in (partial("s-1", turn[:16000]), EndCandidate("s-1", 2.0, turn[:-POST_ROLL_GAP], exact=False),
                     EndCandidate("s-1", 2.0, turn, exact=True)):
            assert await stage.process(item) == [item]  # passed on for the stages after
        outs += await stage.process(utterance("s-1", turn))
        assert (stage.after_endpoint, stage.restarted) == (0, 0)
        # Speech resumed after an exact cut: fed again from the start, still no extraction after the endpoint.
        await stage.process(EndCandidate("s-2", 1.0, turn[:20000], exact=True))
        await stage.process(partial("s-2", turn[:30000]))
        outs += await stage.process(utterance("s-2", turn))
        assert (stage.after_endpoint, stage.restarted) == (0, 1)
        # Never fed (no pause guess before the endpoint): extracted whole.
        outs += await stage.process(utterance("s-3", turn))
        assert stage.after_endpoint == 1
        return outs

    for out in asyncio.run(run()):
        assert out.frames.shape == (len(states), 384 + 88)
        assert torch.equal(out.frames[:, :384], states)
        np.testing.assert_array_equal(out.frames[:, 384:].numpy(), np.broadcast_to(whole, (len(states), 88)))
        assert "functionals" in out.latency_ms
    for _ in range(100):
        if live_threads() == 0:
            break
        time.sleep(0.05)
    assert live_threads() == 0


def test_a_stream_that_stops_mid_utterance_ends_its_extraction(functionals, turn):
    """However the stream stops (here its stage task is cancelled, as when a call fails), no openSMILE thread is
    left waiting for audio."""
    from emostream.stream.stages.stage import run_stage

    async def run() -> int:
        stage, inbox, outbox = UtteranceFunctionals(functionals), asyncio.Queue(), asyncio.Queue()
        task = asyncio.create_task(run_stage(stage, inbox, outbox))
        await inbox.put(PartialAudio("s", "s-1", 1, 0, "customer", 0.0, 1.0, turn[:16000], time.monotonic()))
        await outbox.get()  # fed and passed on
        during = live_threads()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return during

    assert asyncio.run(run()) >= 1
    for _ in range(100):
        if live_threads() == 0:
            break
        time.sleep(0.05)
    assert live_threads() == 0
