"""A stage that reads ahead (``Stage.ahead`` > 1): work on several items at once, outputs in input order; and the
ASR stage doing so on the example dialogue's real turns, its finals decoded as one batch by the real model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest
import soundfile as sf
import torch

from emostream.stream.config import AsrConfig
from emostream.stream.messages import Acoustic, EndOfStream, Utterance
from emostream.stream.services.asr import AsrService, Transcriber
from emostream.stream.stages.stage import Stage, run_stage
from emostream.stream.stages.transcription import Transcription


class Slow(Stage[int, str]):
    """Item n takes ``delays[n]`` seconds; records how many were under way at once and when it flushed."""

    accepts = (int,)

    def __init__(self, ahead: int, delays: list[float]) -> None:
        self.ahead, self.delays = ahead, delays
        self.started: list[int] = []
        self.busy = self.most_busy = 0
        self.flushed_after: list[int] = []
        self.done: list[int] = []

    def start(self, item: int) -> Awaitable[list[str]]:
        self.started.append(item)  # bookkeeping in input order, before any work
        return self._work(item)

    async def process(self, item: int) -> list[str]:
        return await self.start(item)

    async def _work(self, item: int) -> list[str]:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        if self.delays[item] < 0:
            raise RuntimeError(f"item {item} failed")
        await asyncio.sleep(self.delays[item])
        self.busy -= 1
        self.done.append(item)
        return [f"out{item}"]

    async def flush(self) -> list[str]:
        self.flushed_after = list(self.done)
        return ["flushed"]


def run(stage: Stage, items: list) -> list:
    async def go() -> list:
        inbox, outbox = asyncio.Queue(), asyncio.Queue()
        for item in items:
            inbox.put_nowait(item)
        await run_stage(stage, inbox, outbox)
        return [outbox.get_nowait() for _ in range(outbox.qsize())]

    return asyncio.run(go())


def test_outputs_leave_in_input_order_with_passed_items_in_place():
    stage = Slow(3, [0.08, 0.01, 0.04, 0.0, 0.02])
    end = EndOfStream("s", 0, 0.0)
    out = run(stage, [0, 1, "passed", 2, 3, 4, end])
    assert out == ["out0", "out1", "passed", "out2", "out3", "out4", "flushed", end]
    assert stage.started == [0, 1, 2, 3, 4]
    assert stage.done != sorted(stage.done)  # later items did finish first: the order above is restored
    assert stage.most_busy == 3  # never more than ``ahead`` under way (a passed item holds a place too)
    assert sorted(stage.flushed_after) == [0, 1, 2, 3, 4]  # flushed once all work was done


def test_in_order_stage_does_one_item_at_a_time():
    stage = Slow(1, [0.03, 0.0, 0.01])
    assert run(stage, [0, 1, 2, EndOfStream("s", 0, 0.0)])[:3] == ["out0", "out1", "out2"]
    assert stage.most_busy == 1 and stage.done == [0, 1, 2]


def test_failed_work_ends_the_stage_with_its_error():
    stage = Slow(3, [0.05, -1.0, 0.0])
    with pytest.raises(ExceptionGroup) as caught:
        run(stage, [0, 1, 2, EndOfStream("s", 0, 0.0)])
    assert caught.group_contains(RuntimeError, match="item 1 failed")


def test_queued_finals_of_one_stream_are_decoded_as_one_batch(example_dialogue):
    """Every turn of the example as a final waiting behind the ASR stage (as in a fast replay): read ahead, the
    real model decodes them in batches, and each transcript is the one decoded alone, in the turns' order."""
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    now = time.monotonic()
    finals = []
    for n, turn in enumerate(example_dialogue.turns):
        clip = audio[int((turn.start_s - 0.2) * sr): int((turn.end_s + 0.3) * sr)]
        utt = Utterance("s", f"s/{n}", n, 0, "speaker_1", turn.start_s, turn.end_s, clip, now, now, False)
        finals.append(Acoustic(utt, torch.zeros(1, 120), {}))

    def transcripts(ahead: int) -> tuple[list[str], dict[int, int]]:
        cfg = AsrConfig(finals_ahead=ahead, speculate_after_ms=0)
        service = AsrService(Transcriber(cfg, torch.device("cpu")))
        try:
            out = run(Transcription(service, cfg), [*finals, EndOfStream("s", 0, 0.0)])
        finally:
            asyncio.run(service.close())
        assert isinstance(out.pop(), EndOfStream)
        assert [t.acoustic.utterance.utterance_id for t in out] == [f.utterance.utterance_id for f in finals]
        return [t.transcript.text for t in out], dict(service.engine.batches["decode"])

    alone, alone_batches = transcripts(1)
    batched, batches = transcripts(4)
    assert alone_batches == {1: len(finals)}
    assert max(batches) > 1 and sum(size * n for size, n in batches.items()) == len(finals)
    assert batched == alone
    assert "furious" in batched[0].lower()
