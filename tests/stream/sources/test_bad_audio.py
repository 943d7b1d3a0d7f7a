"""Odd audio gives a correct result or a clear error: formats, rates, channel counts, clipping, DC, noise,
very long files, and a fuzz run over decoding and segmentation."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emostream.stream.errors import UserError
from emostream.stream.sources.decode import probe, read_blocks
from emostream.stream.stages.vad import Segmenter, VadConfig, segment_all, to_int16
from tests.stream.cli_run import run_cli


@pytest.fixture(scope="module")
def speech(example_dialogue) -> np.ndarray:
    audio, _ = sf.read(example_dialogue.path, dtype="float32")
    return audio


def decoded(path) -> np.ndarray:
    """Every channel of a file as the stream decodes it, as float."""
    return np.concatenate(list(read_blocks(probe(path))), axis=1).astype(np.float32) / 32768.0


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_every_rate_and_sample_format_segments_like_the_original(tmp_path, speech, example_dialogue, rate, subtype):
    path = tmp_path / "x.wav"
    sf.write(path, soxr.resample(speech, 16000, rate), rate, subtype=subtype)
    segments = segment_all(decoded(path)[0], VadConfig())
    assert len(segments) == len(example_dialogue.turns)
    for s, t in zip(segments, example_dialogue.turns, strict=True):
        assert abs(s.start / 16000 - t.start_s) < 0.3 and abs(s.end / 16000 - t.end_s) < 0.3


@pytest.mark.parametrize("channels", [2, 6])
def test_every_channel_is_its_own_speaker_track(tmp_path, speech, channels):
    data = np.zeros((len(speech), channels), dtype=np.float32)
    data[:, channels - 1] = speech  # speech on the last channel only
    path = tmp_path / "multi.flac"
    sf.write(path, data, 16000)
    tracks = decoded(path)
    assert tracks.shape[0] == channels
    assert all(segment_all(tracks[c], VadConfig()) == [] for c in range(channels - 1))
    assert len(segment_all(tracks[-1], VadConfig())) == 6


def test_clipping_and_dc_offset_still_segment(speech, example_dialogue):
    clipped = np.clip(speech * 8.0, -1.0, 1.0)
    shifted = np.clip(speech + 0.25, -1.0, 1.0)
    for audio in (clipped, shifted):
        assert len(segment_all(audio, VadConfig())) == len(example_dialogue.turns)


def test_a_flac_named_wav_is_read_by_its_content(tmp_path, speech):
    path = tmp_path / "really_flac.wav"
    sf.write(path, speech, 16000, format="FLAC")
    assert probe(path).format == "FLAC"
    np.testing.assert_array_equal(decoded(path)[0], to_int16(speech) / 32768.0)


def test_noise_only_is_no_speech_when_silero_confirms(tmp_path):
    path = tmp_path / "noise.wav"
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, 16000 * 4).astype(np.float32), 16000)
    cfg = tmp_path / "silero.yaml"
    cfg.write_text("vad:\n  confirm_with_silero: true\n")
    r = run_cli("--replay", str(path), "--config", str(cfg))
    assert r.returncode == 2 and "no speech found" in r.stderr and "Traceback" not in r.stderr


def test_a_two_hour_file_decodes_in_bounded_memory(tmp_path):
    """Two hours of 48 kHz stereo would be 1.3 GB as float32; decoding block by block keeps memory flat."""
    path = tmp_path / "long.flac"
    with sf.SoundFile(path, "w", samplerate=48000, channels=2, subtype="PCM_16") as f:
        block = (np.random.default_rng(0).normal(0, 0.01, (48000 * 60, 2))).astype(np.float32)
        for _ in range(120):
            f.write(block)
    script = (
        "import resource, sys; from pathlib import Path\n"
        "from emostream.stream.sources.decode import probe, read_blocks\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "n = sum(b.shape[1] for b in read_blocks(probe(Path(sys.argv[1]))))\n"
        "print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    samples, grown_kb = map(int, out.stdout.split())
    assert abs(samples - 2 * 3600 * 16000) <= 16
    assert grown_kb < 200 * 1024, f"peak memory grew {grown_kb / 1024:.0f} MiB while decoding"


FUZZ_CASES = {"decode": 0, "segment": 0}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=4096), header=st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS"]))
def test_fuzz_decoding_never_crashes(tmp_path_factory, data, header):
    """Arbitrary bytes (with real magic numbers in front) either decode or raise a UserError."""
    FUZZ_CASES["decode"] += 1
    path = tmp_path_factory.mktemp("fuzz") / "f.wav"
    path.write_bytes(header + data)
    try:
        for block in read_blocks(probe(path)):
            assert block.dtype == np.int16
    except UserError as e:
        assert str(path) in str(e)


@settings(max_examples=200, deadline=None)
@given(samples=st.lists(st.integers(-32768, 32767), min_size=0, max_size=480 * 40),
       cfg=st.builds(VadConfig, aggressiveness=st.integers(0, 3), hangover_ms=st.sampled_from([150, 300]),
                     min_utterance_ms=st.sampled_from([30, 250]), max_utterance_ms=st.sampled_from([300, 15000])))
def test_fuzz_segmentation_keeps_its_invariants(samples, cfg):
    """Any signal: segments are ordered, inside the signal, shorter than the maximum, audio matching bounds."""
    FUZZ_CASES["segment"] += 1
    pcm = np.asarray(samples, dtype=np.int16)
    seg, n = Segmenter(cfg), cfg.frame_samples
    out = [s for k in range(0, len(pcm) - n + 1, n) for s in seg.push(pcm[k : k + n])] + seg.flush()
    end = len(pcm) // n * n
    for a, b in itertools.pairwise(out):
        assert a.end <= b.start
    for s in out:
        assert 0 <= s.audio_start <= s.start < s.end <= end
        assert s.end - s.start <= cfg.max_utterance_ms * 16
        assert len(s.audio) >= s.end - s.start


def test_fuzz_case_counts():
    """Prints how many cases the fuzz runs tried (pytest -s shows it); runs after them in file order."""
    print(f"fuzz cases tried: decoding {FUZZ_CASES['decode']}, segmentation {FUZZ_CASES['segment']}")
    assert FUZZ_CASES["decode"] >= 100 and FUZZ_CASES["segment"] >= 100
