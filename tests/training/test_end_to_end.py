"""Real end to end on a small subset of the real corpora: train → export → load gives identical outputs;
emo-eval scores the exported bundle; the caches return what they stored."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from emostream.models.bundle import load_bundle
from emostream.models.features import FeatureSpec
from emostream.models.labels import LABELS
from emostream.stream.stages.vad import VadConfig
from emostream.training.batching import dialogue_inputs, label_array, predict
from emostream.training.cache import audio_frames, text_embeddings
from emostream.training.cli import eval_main, train_main
from emostream.training.config import parse_config
from emostream.training.data.meld import load_meld
from emostream.training.data.ravdess import load_ravdess
from emostream.training.speaker_frames import heard_frames
from emostream.training.splits import subsample
from emostream.training.train import run_training
from tests import REPO_ROOT


def _quick_config() -> dict:
    data = yaml.safe_load((REPO_ROOT / "configs" / "baseline.yaml").read_text())
    data["audio_training"].update(epochs=12, patience=4)
    data["text_training"].update(epochs=4, patience=2)
    return data


def test_train_export_load_is_identical(real_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = parse_config(_quick_config())
    out, cache, reports = tmp_path / "bundle", tmp_path / "cache", tmp_path / "reports"
    run = run_training(cfg, real_data, out, cache, reports, every=40)

    bundle = load_bundle(out)
    meld = subsample(load_meld(real_data, "dev"), 40)
    clips = subsample(load_ravdess(real_data, cfg.splits.ravdess_test_actors), 20)
    frames = audio_frames([c.audio for c in clips], cfg.features, cfg.vad, cache)
    sentences = text_embeddings([u.text for u in meld + clips], cfg.text_encoder, cache)
    inputs = dialogue_inputs(meld, sentences, cfg.dims()) + dialogue_inputs(clips, sentences, cfg.dims(), frames)
    trained, loaded = predict(run.model, inputs), predict(bundle.model, inputs)
    assert np.array_equal(trained, loaded)
    assert np.isfinite(trained).all() and trained.shape == (len(inputs), 7)

    manifest = json.loads((out / "bundle.json").read_text())
    assert set(manifest["scores"]) == {"meld_test_text", "ravdess_test_audio", "ravdess_test_text",
                                       "ravdess_test_fused", "ravdess_test_audio_first", "ravdess_test_audio_quiet",
                                       "ravdess_test_audio_telephone"}
    audio = run.results["ravdess_test_audio"]
    assert manifest["scores"]["ravdess_test_audio"]["accuracy"] == round(audio["accuracy"], 4)
    assert manifest["data_card"]["ravdess"]["actors"]["test"] == cfg.splits.ravdess_test_actors
    assert manifest["data_card"]["training"]["subsample_every"] == 40
    card = (out / "MODEL_CARD.md").read_text()
    assert "CC BY-NC-SA 4.0" in card and "GPL-3.0" in card and "Apache-2.0" in card and "Smoke run" in card
    assert all((reports / f"{name}.{ext}").is_file() for name in manifest["scores"] for ext in ("json", "md", "png"))

    # emo-eval reads the test actors and VAD from the bundle and scores all 60 clips of each test actor
    assert eval_main(["--bundle", str(out), "--corpus", "ravdess", "--data", str(real_data),
                      "--cache", str(cache), "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval" / "ravdess_test_audio.json").read_text())
    assert result["n"] == 60 * len(cfg.splits.ravdess_test_actors)


def test_audio_cache_returns_stored_frames_and_keys_on_settings(tmp_path: Path, ravdess_clip) -> None:
    paths = [ravdess_clip(tmp_path, "05", "01", 1), ravdess_clip(tmp_path, "03", "02", 2)]
    first = audio_frames(paths, FeatureSpec(), VadConfig(), tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "audio").glob("*.npy"))) == 2
    again = audio_frames(paths, FeatureSpec(), VadConfig(), tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(f.shape[1] == FeatureSpec().dim and len(f) > 10 for f in first)
    audio_frames(paths, FeatureSpec(), VadConfig(aggressiveness=3), tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "audio").glob("*.npy"))) == 4


def test_whisper_states_come_from_a_cached_wider_front_end_only_where_exact(tmp_path: Path, ravdess_clip) -> None:
    """Tiny.en states capped at 500 frames without functionals are read from a cached 1000-frame entry with eGeMAPS
    (its first columns) for a clip within the smaller cap, equal to computing them; a longer clip, which the smaller
    cap cuts before encoding, is computed and stored."""
    short = ravdess_clip(tmp_path, "05", "01", 1)
    t = np.arange(12 * 16000) / 16000
    long_clip = tmp_path / "long.flac"
    sf.write(long_clip, (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32),
             16000)
    wide = FeatureSpec(kind="whisper", hop_ms=20.0, deltas=False, functionals="egemaps")
    narrow = dataclasses.replace(wide, functionals="", max_frames=500)
    cache = tmp_path / "cache"
    stored = audio_frames([short, long_clip], wide, VadConfig(), cache)
    assert len(stored[1]) > 500 and stored[0].shape[1] == narrow.dim + 88
    got = audio_frames([short, long_clip], narrow, VadConfig(), cache)
    assert len(list((cache / "audio").glob("*.npy"))) == 3  # the long clip's own entry only
    assert torch.equal(got[0], stored[0][:, : narrow.dim]) and len(got[1]) == 500
    fresh = audio_frames([short, long_clip], narrow, VadConfig(), tmp_path / "fresh")
    for a, b in zip(got, fresh, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert not torch.allclose(got[1], stored[1][:500, : narrow.dim], atol=1e-3)  # cut before encoding: not a slice


def test_cli_errors_are_one_line_and_specific(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    data = _quick_config()
    data["text_training"]["lr"] = "fast"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--config", str(bad)])
    assert exit_info.value.code == 2
    assert "text_training.lr: expected float, got str" in capsys.readouterr().err
    assert eval_main(["--bundle", str(tmp_path / "nope"), "--corpus", "meld"]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_speaker_normalised_run_stores_its_prior_and_scores_as_the_stream_hears(real_data: Path,
                                                                                 tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = parse_config(_quick_config() | {"speaker_norm_frames": 200})
    out, cache = tmp_path / "bundle", tmp_path / "cache"
    run_training(cfg, real_data, out, cache, tmp_path / "reports", every=40)
    bundle = load_bundle(out)
    prior = bundle.meta.speaker_norm
    assert prior is not None and prior.frames == 200

    train = subsample(load_ravdess(real_data, cfg.splits.ravdess_train_actors), 40)
    raw = torch.cat(audio_frames([c.audio for c in train], cfg.features, cfg.vad, cache))
    torch.testing.assert_close(prior.mean, raw.mean(0), rtol=1e-4, atol=1e-4)  # fitted on raw training frames

    # emo-eval of the exported bundle gives the scores stored at export, which were taken on normalised frames
    assert eval_main(["--bundle", str(out), "--corpus", "ravdess", "--data", str(real_data),
                      "--cache", str(cache), "--out", str(tmp_path / "eval")]) == 0
    clips = subsample(load_ravdess(real_data, cfg.splits.ravdess_test_actors), 1)
    heard = heard_frames(audio_frames([c.audio for c in clips], cfg.features, cfg.vad, cache), clips, prior)
    pred = predict(bundle.model, dialogue_inputs(clips, {}, cfg.dims(), heard, use_text=False)).argmax(1)
    result = json.loads((tmp_path / "eval" / "ravdess_test_audio.json").read_text())
    assert result["accuracy"] == pytest.approx(float((pred == label_array(clips, LABELS)).mean()), abs=1e-4)


def test_token_cache_stores_lower_layer_states_and_sentence_specs_have_none(tmp_path: Path) -> None:
    from emostream.models.text_encoder import TextEncoder, TextEncoderSpec
    from emostream.training.cache import text_features

    texts = ["I am so angry right now.", "Fine.", ""]
    assert text_features(texts, TextEncoderSpec(), tmp_path)[1] is None
    spec = TextEncoderSpec(level="token", token_layer=4)
    sentences, first = text_features(texts, spec, tmp_path)  # one encoder pass fills both stores
    assert first is not None and set(first) == {"I am so angry right now.", "Fine."}  # "" has no tokens
    enc = TextEncoder(spec).encode(["Fine."])
    torch.testing.assert_close(first["Fine."].float(), enc.tokens[0, : int(enc.mask[0].sum())], atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(sentences["Fine."], enc.sentence[0], atol=1e-5, rtol=1e-4)
    assert not sentences[""].any()
    again = text_features(texts[:2], spec, tmp_path)[1]
    assert again is not None and all(torch.equal(first[t], again[t]) for t in again)


def test_tuned_text_layers_train_per_member_export_and_load_identically(real_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = _quick_config() | {"text_encoder": {"level": "token", "token_layer": 4}}
    data["model"]["hparams"] = data["model"]["hparams"] | {"text_layers": 2, "text_members": 2}
    data["text_training"].update(epochs=2, patience=2, encoder_lr=1e-4)
    cfg = parse_config(data)
    out, cache = tmp_path / "bundle", tmp_path / "cache"
    run = run_training(cfg, real_data, out, cache, tmp_path / "reports", every=40)
    bundle = load_bundle(out)
    assert bundle.meta.text_encoder.token_layer == 4
    first, second = (member.top.state_dict() for member in bundle.model.text_head.members)

    from emostream.models.text_top import TunedTop
    from emostream.training.cache import text_features

    pretrained = TunedTop("all-MiniLM-L6-v2", 2)
    pretrained.load_pretrained()
    for tuned in (first, second):  # each member's top layers learned, and the bundle holds what they learned
        assert any(not torch.equal(a, b) for a, b in zip(pretrained.state_dict().values(), tuned.values(), strict=True))
    assert any(not torch.equal(first[k], second[k]) for k in first)  # each from its own seed
    assert (tmp_path / "reports" / "checkpoints" / "text_1.pt").is_file()
    assert "a deep ensemble of 2 such branches" in (out / "MODEL_CARD.md").read_text()

    meld = subsample(load_meld(real_data, "dev"), 40)
    texts = [u.text for u in meld]
    sentences, tokens = text_features(texts, cfg.text_encoder, cache)
    inputs = dialogue_inputs(meld, sentences, cfg.dims(), tokens=tokens)
    assert all(x.tokens is not None for x in inputs if x.sentence is not None)
    assert np.array_equal(predict(run.model, inputs), predict(bundle.model, inputs))
