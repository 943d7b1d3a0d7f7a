"""Speaker turns on mono audio: the packaged GE2E encoder on real voices, the online tracker, offline loading.

The dialogue tests use held-out RAVDESS actors 23 (male) and 24 (female), cut at their ground-truth bounds with the
stream's pre- and post-roll, and fed in order as the pipeline would.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.whisper_states import native_bfloat16
from emostream.stream.stages import speakers
from emostream.stream.stages.speakers import EMBED_DIM, SpeakerConfig, SpeakerEncoder, SpeakerTracker
from emostream.stream.stages.vad import VadConfig, cut_utterance
from tests.support import dialogues as dlg

NO_RESEMBLYZER = "resemblyzer not installed (pip install --no-deps resemblyzer)"
needs_resemblyzer = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None, reason=NO_RESEMBLYZER)


@pytest.fixture(scope="module")
def encoder() -> Iterator[SpeakerEncoder]:
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip(NO_RESEMBLYZER)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on two shared cores, two LSTM threads run ~10x slower than one
    try:
        yield SpeakerEncoder()
    finally:
        torch.set_num_threads(threads)


def turn_audio(d: dlg.Dialogue) -> list[np.ndarray]:
    """Each turn as the stream would hand it on: ground-truth voiced bounds plus the VAD's pre- and post-roll."""
    x, sr = sf.read(d.path, dtype="float32")
    assert sr == speakers.SAMPLE_RATE and x.ndim == 1
    vad = VadConfig()
    return [cut_utterance(x, (round(t.start_s * sr), round(t.end_s * sr)), vad) for t in d.turns]


def consistent(got: list[str], truth: list[str]) -> int:
    """Turns labelled consistently with the truth under the best one-to-one renaming (two speakers)."""
    labels = sorted(set(got))
    names = sorted(set(truth))
    best = 0
    for perm in ([0, 1], [1, 0]) if len(labels) == 2 else ([0],):
        mapping = {labels[i]: names[j] for i, j in enumerate(perm[: len(labels)])}
        best = max(best, sum(mapping.get(g) == t for g, t in zip(got, truth, strict=True)))
    return best


# ----------------------------------------------------------------------------------------------- config and logic


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"threshold": 1.5}, "speakers.threshold"), ({"max_speakers": 0}, "speakers.max_speakers"),
     ({"min_utterance_s": -1.0}, "speakers.min_utterance_s"), ({"enabled": "yes"}, "speakers.enabled")],
)
def test_config_rejects_bad_values_naming_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        SpeakerConfig(**kwargs)


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(EMBED_DIM)
    return v / np.linalg.norm(v)


def test_tracker_opens_joins_caps_and_ignores_short_utterances() -> None:
    tr = SpeakerTracker(SpeakerConfig(threshold=0.5, max_speakers=2, min_utterance_s=1.0))
    a, b, c = _unit(1), _unit(2), _unit(3)  # random 256-d vectors are nearly orthogonal
    assert tr.assign_embedding(a, 0.5).speaker == "spk1" and tr.speakers == ()  # too short to found a speaker
    first = tr.assign_embedding(a, 2.0)
    assert (first.speaker, first.new) == ("spk1", True)
    assert tr.assign_embedding(b, 2.0).speaker == "spk2"
    near_a = a + 0.3 * _unit(4)
    assert tr.assign_embedding(near_a / np.linalg.norm(near_a), 2.0).speaker == "spk1"
    assert tr.assign_embedding(c, 0.4).speaker in {"spk1", "spk2"}  # short: labelled, not counted
    assert tr.counts == (2, 1)
    cap = tr.assign_embedding(c, 2.0)  # unlike both, but max_speakers is reached: nearest
    assert not cap.new and cap.speaker in {"spk1", "spk2"} and tr.speakers == ("spk1", "spk2")
    silent = tr.assign_embedding(np.zeros(EMBED_DIM), 3.0)
    assert not silent.new and sum(tr.counts) == 4
    tr.reset()
    assert tr.speakers == () and tr.assign_embedding(b, 2.0).speaker == "spk1"
    with pytest.raises(ValueError, match="256"):
        tr.assign_embedding(np.ones(3), 2.0)


# ----------------------------------------------------------------------------------------------- the real encoder


def test_embeddings_are_unit_vectors_also_for_short_and_silent_audio(encoder: SpeakerEncoder) -> None:
    clip = dlg.ravdess_clip(24, 1, 1)
    full = encoder.embed(clip.samples)
    short = encoder.embed(clip.samples[: 8000])  # 0.5 s: one pass over the true length, no silence padding
    for e in (full, short):
        assert e.shape == (EMBED_DIM,) and e.dtype == np.float32
        assert np.isclose(np.linalg.norm(e), 1.0, atol=1e-5)
    assert float(full @ short) > 0.5
    assert np.array_equal(encoder.embed(clip.samples), full)  # deterministic
    assert not encoder.embed(np.zeros(16000, np.float32)).any()
    assert not encoder.embed(np.zeros(10, np.float32)).any()


def test_alternating_actors_get_two_consistent_labels(encoder: SpeakerEncoder, ravdess_dialogue: dlg.Dialogue) -> None:
    tracker = SpeakerTracker(SpeakerConfig(), encoder)
    got = [tracker.assign(u).speaker for u in turn_audio(ravdess_dialogue)]
    truth = [t.speaker for t in ravdess_dialogue.turns]
    assert truth == ["A", "B"] * 4
    assert len(set(got)) == 2, got
    assert consistent(got, truth) >= 7, (got, truth)


@pytest.mark.skipif(not native_bfloat16(torch.device("cpu")), reason="this CPU has no bfloat16 arithmetic")
def test_bfloat16_embeddings_label_the_turns_as_float32_does(encoder: SpeakerEncoder,
                                                             ravdess_dialogue: dlg.Dialogue) -> None:
    fast = SpeakerEncoder(bfloat16=True)
    turns = turn_audio(ravdess_dialogue)
    cosines = [float(encoder.embed(u) @ fast.embed(u)) for u in turns]
    assert min(cosines) > 0.999, cosines
    assert max(cosines) < 1.0 - 1e-7, cosines  # the precision reached the LSTM
    trackers = [SpeakerTracker(SpeakerConfig(), e) for e in (encoder, fast)]
    labels = [[t.assign(u).speaker for u in turns] for t in trackers]
    assert labels[0] == labels[1] and len(set(labels[1])) == 2, labels


@pytest.mark.parametrize("actor", [23, 24])
def test_one_actor_in_many_emotions_gets_one_label(
    encoder: SpeakerEncoder, tmp_path: Path, actor: int
) -> None:
    emotions = [(1, 1, 1), (3, 2, 2), (5, 1, 2), (4, 2, 2), (8, 2, 2), (6, 1, 2), (7, 1, 2), (2, 2, 1)]
    spec = [("A", dlg.ravdess_clip(actor, e, s, intensity=i)) for e, s, i in emotions]
    d = dlg.build_dialogue(tmp_path / f"actor{actor}.flac", spec, pause_s=1.0)
    tracker = SpeakerTracker(SpeakerConfig(), encoder)
    got = [tracker.assign(u).speaker for u in turn_audio(d)]
    assert got == ["spk1"] * 8, got


@needs_resemblyzer
def test_encoder_loads_and_runs_with_the_network_off() -> None:
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("`unshare -n` is not permitted here")
    package_root = str(Path(speakers.__file__).parents[3])  # holds emostream/, wherever it is imported from
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
    code = (
        "import numpy as np, socket\n"
        "from emostream.stream.stages.speakers import SpeakerEncoder\n"
        "try:\n    socket.create_connection(('pypi.org', 443), timeout=2); raise SystemExit('network is up')\n"
        "except OSError:\n    pass\n"
        "e = SpeakerEncoder().embed(np.random.default_rng(0).standard_normal(24000).astype('float32') * 0.1)\n"
        "print(e.shape, round(float(np.linalg.norm(e)), 3))\n"
    )
    out = subprocess.run([unshare, "-n", sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(256,) 1.0" in out.stdout
