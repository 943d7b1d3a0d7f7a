"""The endpointer on real speech: boundaries against ground truth, streaming equals offline, long speech is split."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import soundfile as sf

from emostream.stream.stages.vad import Segmenter, VadConfig, cut_utterance, segment_all, speech_spans, to_int16


def load(dialogue) -> np.ndarray:
    audio, sr = sf.read(dialogue.path, dtype="float32")
    assert sr == 16000
    return audio


def test_boundaries_match_the_example_dialogue(example_dialogue):
    spans = speech_spans(load(example_dialogue), VadConfig())
    assert len(spans) == len(example_dialogue.turns)
    for (s, e), turn in zip(spans, example_dialogue.turns, strict=True):
        assert abs(s / 16000 - turn.start_s) < 0.3
        assert abs(e / 16000 - turn.end_s) < 0.3


def test_frame_by_frame_equals_offline(example_dialogue):
    audio = load(example_dialogue)
    cfg = VadConfig(aggressiveness=3, hangover_ms=240)
    seg, pcm, n = Segmenter(cfg), to_int16(audio), cfg.frame_samples
    streamed = [s for k in range(0, len(pcm) - n + 1, n) for s in seg.push(pcm[k : k + n])] + seg.flush()
    offline = segment_all(audio, cfg)
    assert [(s.start, s.end) for s in streamed] == [(s.start, s.end) for s in offline]
    for s in offline:  # the handed-on audio is the voiced span plus the configured pre- and post-roll
        np.testing.assert_array_equal(s.audio, to_int16(cut_utterance(audio, (s.start, s.end), cfg)) / 32768.0)


def test_long_speech_is_split_at_the_maximum(example_dialogue):
    cfg = VadConfig(max_utterance_ms=1500)
    segments = segment_all(load(example_dialogue), cfg)
    assert any(s.split for s in segments)
    assert all(s.end - s.start <= 1500 * 16 for s in segments)
    # A piece after a split starts where the split cut (unless it was too short to keep).
    assert any(a.split and b.start == a.end for a, b in itertools.pairwise(segments))


def test_silence_and_clicks_give_no_segment():
    cfg = VadConfig()
    assert segment_all(np.zeros(16000 * 3, dtype=np.float32), cfg) == []
    click = np.zeros(16000 * 3, dtype=np.float32)
    click[16000:16000 + 480] = np.random.default_rng(0).uniform(-0.9, 0.9, 480)
    assert segment_all(click, cfg) == []


@pytest.mark.parametrize("bad, key", [
    ({"aggressiveness": 4}, "vad.aggressiveness"),
    ({"frame_ms": 25}, "vad.frame_ms"),
    ({"post_roll_ms": 500}, "vad.post_roll_ms"),
    ({"hangover_ms": 10}, "vad.hangover_ms"),
])
def test_bad_settings_name_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        VadConfig(**bad)


def test_silero_drops_noise_and_keeps_speech(example_dialogue):
    from emostream.stream.stages.confirmation import SileroConfirmation

    cfg = VadConfig(confirm_with_silero=True)
    silero = SileroConfirmation(cfg)
    audio = load(example_dialogue)
    speech = segment_all(audio, cfg)
    assert all(silero.speech_ms(s.audio) >= cfg.silero_min_speech_ms for s in speech)
    noise = np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32)
    assert segment_all(noise, cfg), "WebRTC VAD takes loud white noise for speech"
    assert silero.speech_ms(noise) < cfg.silero_min_speech_ms
