"""Speculation during the hangover: the final decode and the text embedding start before the endpoint,
and their results are used only when the final utterance is the one they assumed."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.bundle import DEFAULT_BUNDLE, load_bundle
from emostream.models.features import FeatureSpec, make_extractor
from emostream.models.text_encoder import TextEncoder
from emostream.stream.config import AsrConfig
from emostream.stream.messages import (
    Acoustic,
    AudioFrame,
    EndCandidate,
    PartialAudio,
    Speculated,
    Transcribed,
    Transcript,
    Utterance,
)
from emostream.stream.services.asr import AsrService, Transcriber
from emostream.stream.services.threaded import ThreadedExtractor, ThreadedTextEncoder
from emostream.stream.sources.decode import probe
from emostream.stream.sources.replay import replay
from emostream.stream.stages.acoustic import AcousticFeatures
from emostream.stream.stages.embedding import TextEmbedding
from emostream.stream.stages.segmentation import Segmentation
from emostream.stream.stages.transcription import Transcription
from emostream.stream.stages.vad import VadConfig


def acoustic(utterance_id: str, audio: np.ndarray, end_s: float) -> Acoustic:
    now = time.monotonic()
    utt = Utterance("s", utterance_id, 0, 0, "speaker_1", 0.0, end_s, audio, now, now, False)
    return Acoustic(utt, torch.zeros(1, 120), {})


def transcribed(utterance_id: str, text: str) -> Transcribed:
    return Transcribed(acoustic(utterance_id, np.zeros(1600, np.float32), 0.1), Transcript(text, -0.1, 0.0), {})


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(load_bundle(DEFAULT_BUNDLE).meta.text_encoder)


def test_prepared_embedding_is_used_only_for_the_same_utterance_and_text(encoder):
    async def run() -> tuple[list, TextEmbedding]:
        stage = TextEmbedding(ThreadedTextEncoder(encoder))
        out = [await stage.process(Speculated("s/1", "I am so happy today"))]
        out.append(await stage.process(transcribed("s/1", "I am so happy today")))
        out.append(await stage.process(Speculated("s/2", "I was wrong")))
        out.append(await stage.process(transcribed("s/2", "I was right")))  # speech went on: a new final text
        out.append(await stage.process(Speculated("s/3", "never mind")))
        out.append(await stage.process(transcribed("s/4", "")))  # no words: nothing embedded, s/3 dropped
        return out, stage

    out, stage = asyncio.run(run())
    assert out[0] == out[2] == out[4] == []  # a speculation emits nothing by itself
    expected = encoder.encode(["I am so happy today", "I was right"]).sentence
    assert torch.allclose(out[1][0].sentence, expected[0], atol=1e-6)
    assert torch.allclose(out[3][0].sentence, expected[1], atol=1e-6)
    assert out[5][0].sentence is None
    assert stage.speculation.wasted == 2


def test_speculative_transcript_goes_downstream_before_its_final(example_dialogue):
    turn = example_dialogue.turns[0]
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    clip = audio[int((turn.start_s - 0.2) * sr): int((turn.end_s + 0.3) * sr)]
    cfg = AsrConfig()

    async def run() -> tuple[list, list]:
        service = AsrService(Transcriber(cfg, torch.device("cpu")))
        stage = Transcription(service, cfg)
        outbox: asyncio.Queue = asyncio.Queue()
        stage.attach(outbox)
        assert await stage.process(EndCandidate("s/1", turn.end_s, clip[:-1440], exact=False)) == []
        assert await stage.process(EndCandidate("s/1", turn.end_s, clip, exact=True)) == []  # same pause: kept
        finals = await stage.process(acoustic("s/1", clip, turn.end_s))
        await service.close()
        return [outbox.get_nowait() for _ in range(outbox.qsize())], finals

    emitted, finals = asyncio.run(run())
    assert len(finals) == 1 and "furious" in finals[0].transcript.text.lower()
    assert finals[0].transcript.speculated  # the path is reported: emo-bench scores each path apart
    assert emitted == [Speculated("s/1", finals[0].transcript.text)]  # one decode for the pause, not two


def test_final_without_a_candidate_is_decoded_from_the_exact_cut(example_dialogue):
    """An utterance no candidate announced (cut at the maximum length, the end of a file), or whose candidate
    assumed another end (speech resumed), is decoded after the endpoint and reported as not speculated."""
    turn = example_dialogue.turns[0]
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    clip = audio[int((turn.start_s - 0.2) * sr): int((turn.end_s + 0.3) * sr)]
    cfg = AsrConfig()

    async def run() -> list:
        service = AsrService(Transcriber(cfg, torch.device("cpu")))
        stage = Transcription(service, cfg)
        stage.attach(asyncio.Queue())
        await stage.process(EndCandidate("s/1", turn.end_s - 0.5, clip[: -sr // 2], exact=False))
        finals = await stage.process(acoustic("s/1", clip, turn.end_s))  # speech went on after that pause
        finals += await stage.process(acoustic("s/2", clip, turn.end_s))  # no candidate at all
        await service.close()
        assert stage.speculation.wasted == 1
        return finals

    finals = asyncio.run(run())
    assert [f.transcript.speculated for f in finals] == [False, False]
    assert all("furious" in f.transcript.text.lower() for f in finals)


def test_exact_candidate_is_the_utterance_the_endpoint_cuts_sample_for_sample(example_dialogue):
    """Features are only worth reusing if their input is exactly the final utterance's; the earlier guess (for
    ASR) is the same audio without the end of the post-roll."""
    cfg = VadConfig()

    async def run() -> list:
        stage = Segmentation("s", cfg, (), partial_interval_ms=0, speculate_after_ms=60)
        out = []
        async for msg in replay(probe(example_dialogue.path), "s", cfg.frame_samples, False, asyncio.Event()):
            if isinstance(msg, AudioFrame):
                out += await stage.process(msg)
        return out + await stage.flush()

    out = asyncio.run(run())
    finals = [m for m in out if isinstance(m, Utterance)]
    assert len(finals) == len(example_dialogue.turns)
    for utt in finals:
        guesses = [m for m in out if isinstance(m, EndCandidate) and m.pause == utt.pause]
        assert [g.exact for g in guesses] == [False, True], utt.utterance_id
        early, exact = guesses
        assert exact.key == utt.key and np.array_equal(exact.audio, utt.audio)
        assert len(utt.audio) - len(early.audio) == 3 * cfg.frame_samples  # 150 - 60 ms of post-roll still to come
        assert np.array_equal(early.audio, utt.audio[: len(early.audio)])


def test_features_use_the_candidate_only_for_the_same_audio(example_dialogue):
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    clip = audio[: 3 * sr]

    async def run() -> tuple[list, AcousticFeatures]:
        stage = AcousticFeatures(ThreadedExtractor(make_extractor(FeatureSpec())))
        await stage.process(EndCandidate("s/1", 2.5, clip[:-1440], exact=False))  # a guess: not used for features
        passed = await stage.process(EndCandidate("s/1", 2.5, clip, exact=True))
        same = await stage.process(acoustic("s/1", clip, 2.5).utterance)
        await stage.process(EndCandidate("s/2", 2.5, clip, exact=True))
        longer = await stage.process(acoustic("s/2", audio[: 4 * sr], 2.5).utterance)  # speech went on
        return [passed, same, longer], stage

    def frames(wave: np.ndarray) -> torch.Tensor:
        feats, mask = make_extractor(FeatureSpec())([torch.from_numpy(wave)])
        return feats[0, : int(mask[0].sum())]

    (passed, same, longer), stage = asyncio.run(run())
    assert [m.key for m in passed] == [("s/1", 2.5, len(clip))]  # the candidate goes on to ASR
    assert torch.equal(same[0].frames, frames(clip))
    assert torch.equal(longer[0].frames, frames(audio[: 4 * sr]))
    assert stage.speculation.wasted == 1


def test_no_partial_once_a_pause_has_a_candidate(example_dialogue):
    """A partial due during a pause would decode the words the candidate's final decode is already hearing, and make
    that final wait; without speculation there is no such decode, and partials go on through the pause."""
    cfg = VadConfig()

    async def run(speculate_after_ms: int) -> list:
        stage = Segmentation("s", cfg, (), partial_interval_ms=100, speculate_after_ms=speculate_after_ms)
        out = []
        async for msg in replay(probe(example_dialogue.path), "s", cfg.frame_samples, False, asyncio.Event()):
            if isinstance(msg, AudioFrame):
                out += await stage.process(msg)
        return out + await stage.flush()

    def in_final_pause(out: list) -> tuple[int, int]:
        """Partials in all, and those sent after the pause that ended their utterance began."""
        finals = {m.utterance_id: m.end_s for m in out if isinstance(m, Utterance)}
        partials = [m for m in out if isinstance(m, PartialAudio)]
        return len(partials), sum(m.end_s > finals[m.utterance_id] + 0.06 for m in partials)

    speculating, plain = in_final_pause(asyncio.run(run(60))), in_final_pause(asyncio.run(run(0)))
    assert plain[1] >= len(example_dialogue.turns)  # a pause spans a 100 ms partial interval, at least once per turn
    assert speculating[1] == 0
    # Partials while speech goes on are still sent; only those inside a shorter pause, once its candidate is out, not.
    assert 0.9 * (plain[0] - plain[1]) <= speculating[0] < plain[0] - plain[1]
