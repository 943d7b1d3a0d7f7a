"""Every seed architecture served end to end: a bundle from a real (short) fused training run on fixture corpora,
replayed through the real ``emo-stream --replay`` on cuts of the bundled example call.

Each stream is stereo, one named speaker per channel, so that who said what is fixed (no voice encoder):

- ``after``: the call's first three turns on the ``caller`` channel;
- ``alone``: its third turn alone;
- ``other``: the same timeline as ``after``, with the first two turns on the ``other`` channel.

The third turn's audio and words are the same in all three; only its past differs. Paper 004's per-speaker window
holds the speaker's own past only, so its words are read differently after ``caller``'s own turns and exactly as
alone after someone else's; melcnn_bigru's dialogue BiGRU reads every past turn.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emostream.models.labels import LABELS
from emostream.training.config import Splits, load_config
from emostream.training.fused import run_fused_training
from emostream.training.seeds import SEEDS
from tests import REPO_ROOT
from tests.stream.cli_run import of_type, run_cli
from tests.training.conftest import write_meld, write_ravdess_clip

READS_PAST = {"dialogue_bilstm_mha", "melcnn_bigru"}
TURN3_S = (10.5, 15.0)  # the call's third turn (11.01-14.32 s), with the pauses around it
WORDS = {"neutral": "The meeting is at noon in room four.", "joy": "This is wonderful, I am so happy!",
         "surprise": "Wow, I really did not expect that!", "anger": "I am furious, this is outrageous!",
         "sadness": "I feel so sad and lonely today.", "disgust": "That is revolting, it makes me sick.",
         "fear": "I am scared something terrible will happen."}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RAVDESS (actors 1-2 train, 3 dev, 4 test; every emotion, both statements) and MELD (every label in each
    split, two-speaker dialogues) in their real layouts."""
    root = tmp_path_factory.mktemp("corpora")
    for actor in (1, 2, 3, 4):
        for emotion in range(1, 9):
            write_ravdess_clip(root, f"{emotion:02d}", f"{1 + actor % 2:02d}", actor)
    for n, split in enumerate(("train", "dev", "test")):
        rows = [(f"{WORDS[label]}{' Really.' * k}", ("Ann", "Bob")[(i + k) % 2], label, 10 * n + k, i)
                for k in range(2 if split == "train" else 1) for i, label in enumerate(LABELS)]
        write_meld(root, split, rows)
    return root


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three stereo cuts of examples/call_center.flac the module docstring describes."""
    audio, rate = sf.read(REPO_ROOT / "examples" / "call_center.flac", dtype="float32")
    start, end = (round(s * rate) for s in TURN3_S)
    silent = np.zeros(end, dtype=np.float32)
    first_two = np.concatenate([audio[:start], np.zeros(end - start, dtype=np.float32)])
    third = np.concatenate([np.zeros(start, dtype=np.float32), audio[start:end]])
    folder = tmp_path_factory.mktemp("streams")
    cuts = {"after": (audio[:end], silent), "alone": (audio[start:end], silent[start:]), "other": (third, first_two)}
    for name, channels in cuts.items():
        sf.write(folder / f"{name}.flac", np.stack(channels, axis=1), rate)
    return {name: folder / f"{name}.flac" for name in cuts}


def train_bundle(arch: str, data: Path, out: Path, cache: Path) -> str:
    """The seed config of ``arch`` at its paper sizes, trained for one epoch on the fixture corpora; its id. No
    temperature: fitted on fixture dev data, it would flatten every output toward uniform."""
    cfg = load_config(REPO_ROOT / "configs" / f"{arch}.yaml")
    ft = dataclasses.replace(cfg.fused_training, epochs=1, batch_size=8, text_only=7, max_minutes=0, calibrate=False)
    cfg = dataclasses.replace(cfg, fused_training=ft, audio_corpora=["ravdess"], text_corpora=["meld"],
                              splits=Splits([1, 2], [3], [4]), bundle_id=f"test-{arch}")
    run_fused_training(cfg, data, out, cache, out.parent / "reports")
    return cfg.bundle_id


@pytest.mark.parametrize("arch", SEEDS)
def test_seed_bundle_serves_a_replayed_call(arch: str, corpora: Path, streams: dict[str, Path], tmp_path: Path,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    torch.set_num_threads(1)
    bundle_id = train_bundle(arch, corpora, tmp_path / "bundle", tmp_path_factory.getbasetemp() / "seed-cache")
    names = ("after", "alone", "other") if arch in READS_PAST else ("after",)
    replays = [x for name in names for x in ("--replay", str(streams[name]))]
    r = run_cli(*replays, "--bundle", str(tmp_path / "bundle"), "--channels", "caller,other", "--no-partials")
    assert r.returncode == 0, r.stderr
    finals = of_type(r.events, "emotion")
    assert {e["stream_id"] for e in finals} == set(names)
    estimates = {e["utterance_id"] for e in of_type(r.events, "emotion_estimate")}
    for e in finals:
        assert e["model_id"] == bundle_id and e["utterance_id"] in estimates
        assert set(e["scores"]) == set(LABELS) and math.isclose(sum(e["scores"].values()), 1.0, abs_tol=2e-3)
        assert e["modality_scores"]["audio"] is not None
    by_stream = {name: [e for e in finals if e["stream_id"] == name] for name in names}
    assert len(by_stream["after"]) == 3 and [e["speaker"] for e in by_stream["after"]] == ["caller"] * 3
    if arch not in READS_PAST:
        return
    third = {name: by_stream[name][-1] for name in names}
    assert len({e["transcript"] for e in third.values()}) == 1, "the third turn must be heard as the same words"
    assert third["other"]["speaker"] == "caller" and by_stream["other"][0]["speaker"] == "other"
    words = {name: np.array([e["modality_scores"]["text"][k] for k in LABELS]) for name, e in third.items()}
    assert np.abs(words["after"] - words["alone"]).max() > 1e-3, "the speaker's past did not reach the model"
    if arch == "dialogue_bilstm_mha":  # the window is the speaker's own past: another speaker's turns are not in it
        np.testing.assert_allclose(words["other"], words["alone"], atol=2e-4)
    else:  # the dialogue BiGRU reads every past turn, whoever spoke it
        assert np.abs(words["other"] - words["alone"]).max() > 1e-3
