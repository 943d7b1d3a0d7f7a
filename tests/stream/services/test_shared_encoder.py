"""One Whisper encoder pass per utterance, batched across streams (issue 16): the features taken from the ASR's
encode are the standalone extractor's, transcripts decoded through the shared, batching engine are the plain
transcriber's, and a pipeline whose bundle can share runs one encode per utterance for both.

The default bundle reads encoder block 2, which CTranslate2 does not return, so it cannot share; the shipped "fast"
bundle reads the encoder's output and does."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.bundle import DEFAULT_BUNDLE, SHIPPED_BUNDLES, read_meta
from emostream.models.features import FeatureSpec, make_extractor
from emostream.stream.config import AsrConfig, Config, override
from emostream.stream.services.asr import FINAL, PARTIAL, AsrService, Transcriber
from emostream.stream.services.shared_states import SharedStates, why_not_shared
from emostream.stream.stages.vad import VadConfig

CPU = torch.device("cpu")


def output_spec() -> FeatureSpec:
    spec = read_meta(SHIPPED_BUNDLES["fast"]).features
    assert spec.whisper_layer == 0
    return spec


@pytest.fixture(scope="module")
def turns(example_dialogue) -> list[np.ndarray]:
    audio, sr = sf.read(example_dialogue.path, dtype="float32")
    return [audio[int((t.start_s - 0.2) * sr): int((t.end_s + 0.15) * sr)] for t in example_dialogue.turns]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(AsrConfig(), CPU)


def test_the_encoders_output_is_shared_and_why_another_front_end_is_not_is_said():
    spec, asr, vad = output_spec(), AsrConfig().resolved("cpu"), VadConfig()
    assert why_not_shared(spec, asr, vad, CPU) == ""
    assert "encoder block 2" in why_not_shared(read_meta(DEFAULT_BUNDLE).features, asr, vad, CPU)
    assert "windows differ" in why_not_shared(spec, replace(asr, window_s=6.0), vad, CPU)
    assert "'base'" in why_not_shared(spec, replace(asr, model="base"), vad, CPU)
    assert "long-form" in why_not_shared(replace(spec, whisper_window_s=30.0), replace(asr, window_s=30.0), vad, CPU)
    assert "exceed" in why_not_shared(spec, asr, replace(vad, max_utterance_ms=25000), CPU)
    assert "share_encoder" in why_not_shared(spec, replace(asr, share_encoder=False), vad, CPU)


def test_shared_encode_gives_the_extractors_features_and_the_transcribers_text(transcriber, turns):
    """Every turn of the example at once, as concurrent streams would send them: the engine batches the decodes
    (on a CPU not the encodes), and each result is still the one-at-a-time result (features within float
    tolerance, transcripts identical)."""
    feats, mask = make_extractor(output_spec(), with_functionals=False)([torch.from_numpy(t) for t in turns])
    expected_text = [transcriber.transcribe(t) for t in turns]

    async def run() -> tuple[list, list, dict]:
        service = AsrService(transcriber, max_batch=8)
        encodings = await asyncio.gather(*(service.encode(t, FINAL) for t in turns))
        texts = await asyncio.gather(*(service.decode(e, FINAL) for e in encodings))
        await service.close()
        return encodings, texts, service.engine.batches

    encodings, texts, batches = asyncio.run(run())
    for i, encoding in enumerate(encodings):
        frames = SharedStates.frames(encoding)
        assert frames.shape == (int(mask[i].sum()), feats.shape[-1])
        assert torch.allclose(frames, feats[i, : len(frames)], atol=1e-4)
    assert [t.text for t in texts] == [t.text for t in expected_text]
    assert [t.avg_logprob for t in texts] == pytest.approx([t.avg_logprob for t in expected_text], abs=1e-4)
    assert max(batches["decode"]) > 1  # concurrent finals were decoded together (calls counted per batch size)
    assert set(batches["encode"]) == {1}  # but encoded one at a time: on a CPU a batch only delays the first


def test_finals_go_before_partials_queued_earlier(transcriber, turns):
    async def run() -> list[str]:
        service = AsrService(transcriber)
        release, done = threading.Event(), []

        async def one(name: str, audio: np.ndarray, priority: int) -> None:
            await service.transcribe(audio, priority)
            done.append(name)

        busy = asyncio.create_task(service.engine.call(release.wait, FINAL))  # holds the model meanwhile
        partial = asyncio.create_task(one("partial", turns[1], PARTIAL))
        while service.engine.waiting < 1:  # the partial's encode is queued before the final's
            await asyncio.sleep(0.01)
        final = asyncio.create_task(one("final", turns[2], FINAL))
        while service.engine.waiting < 2:
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(busy, partial, final)
        await service.close()
        return done

    assert asyncio.run(run()) == ["final", "partial"]  # its encode and its decode, both ahead of the partial


def test_pipeline_encodes_each_utterance_once_for_features_and_asr(example_dialogue):
    """A real replay of the example: as many encoder passes as utterances (the features' and the final decode's
    shared), and the final transcripts of the unshared pipeline."""
    from emostream.stream.pipeline import StreamPipeline, StreamSpec
    from emostream.stream.services.runtime import load_runtime
    from emostream.stream.tools.bench.worker import Recorder, SourceClock, timed_source

    def run(share: bool) -> tuple[list[str], int]:
        cfg = override(Config(), publish={"stdout": False}, asr={"share_encoder": share, "partial_interval_ms": 0},
                       model={"bundle": "fast"})
        runtime = load_runtime(cfg)
        assert isinstance(runtime.features, SharedStates) == share
        # The loaded models are out of the collector's reach (runtime.freeze_loaded_objects).
        assert not any(o is runtime.bundle.model for o in gc.get_objects())
        recorder = Recorder()
        source = timed_source(example_dialogue.path, "s", cfg.vad.frame_samples, False, SourceClock())
        pipeline = StreamPipeline(StreamSpec("s", source, "example", live=False), cfg, runtime, [recorder])

        async def go() -> None:
            await pipeline.run(asyncio.Event())
            await runtime.close()

        asyncio.run(go())
        finals = [e["transcript"] for _, e in recorder.events if e["type"] == "emotion"]
        encodes = pipeline.transcription.encodes.encodes if share else -1
        return finals, encodes

    shared, encodes = run(True)
    unshared, _ = run(False)
    assert encodes == len(shared) == len(example_dialogue.turns)
    assert shared == unshared


def test_features_stage_starts_the_shared_encode_on_the_exact_candidate(transcriber, turns):
    """The utterance's one encode starts during the hangover, on the exact ``EndCandidate``, and the utterance the
    endpoint hands on joins it (no second encode), so the features wait for nothing that could have run before the
    endpoint. A guess short of the post-roll starts nothing."""
    from emostream.stream.messages import EndCandidate, Utterance
    from emostream.stream.stages.acoustic import AcousticFeatures
    from emostream.stream.stages.encodes import SharedEncodes

    spec, clip = output_spec(), turns[0]

    async def run() -> tuple[list[tuple[int, int]], torch.Tensor]:
        service = AsrService(transcriber)
        shared = SharedEncodes(SharedStates(service))
        stage = AcousticFeatures(shared)

        def passes() -> tuple[int, int]:  # (passes the stages started, encoder calls the engine made)
            return shared.encodes, service.engine.batches["encode"].total()

        seen = []
        await stage.process(EndCandidate("s/1", 2.5, clip[:-1440], exact=False))
        await asyncio.sleep(0.05)
        seen.append(passes())
        await stage.process(EndCandidate("s/1", 2.5, clip, exact=True))
        for _ in range(3000):  # the hangover goes on while the encoder runs (if it was started)
            if passes()[1]:
                break
            await asyncio.sleep(0.01)
        seen.append(passes())
        now = time.monotonic()
        (out,) = await stage.process(Utterance("s", "s/1", 0, 0, "speaker_1", 0.0, 2.5, clip, now, now, False))
        seen.append(passes())
        await service.close()
        return seen, out.frames

    seen, frames = asyncio.run(run())
    assert seen == [(0, 0), (1, 1), (1, 1)]
    feats, mask = make_extractor(spec, with_functionals=False)([torch.from_numpy(clip)])
    assert torch.allclose(frames, feats[0, : int(mask[0].sum())], atol=1e-4)
