"""Fused training: label-matched pairing, the shared loop on every architecture, configs, temperature
calibration folded into weights, the fused text's reference, and a real manifest run (emo-train → emo-eval → load)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from emostream.models.baseline import LateFusionBaseline
from emostream.models.blocks import fuse_log_probs
from emostream.models.bundle import BundleError, BundleMeta, load_bundle, save_bundle
from emostream.models.collate import PastUtterance, UtteranceInput, collate
from emostream.models.features import FeatureSpec
from emostream.models.interface import ModelDims
from emostream.models.labels import LABELS
from emostream.models.text_encoder import TextEncoderSpec
from emostream.models.zoo import default_inputs
from emostream.training.cli import eval_main, train_main
from emostream.training.config import ConfigError, load_config, parse_config
from emostream.training.fused import Group, fit_fused
from emostream.training.pairs import match_labels, paired_inputs
from emostream.training.seeds import SEEDS
from emostream.training.temperature import (
    calibrate_branches,
    fit_temperature,
    fit_text_reference,
    fold_temperature,
    output_layer,
)
from tests import REPO_ROOT


def test_match_labels_pairs_same_label_and_redraws() -> None:
    audio_y = np.array([0, 1, 1, 2, 3])
    text_y = np.array([1, 0, 2, 1, 0, 1, 2])
    rng = np.random.default_rng(0)
    a, t = match_labels(audio_y, text_y, rng, per_clip=3)
    kept = [0, 1, 2, 3]  # label 3 has no text: its clip is left out
    assert list(a) == [i for i in kept for _ in range(3)]
    assert np.array_equal(audio_y[a], text_y[t])
    draws = {tuple(match_labels(audio_y, text_y, rng)[1]) for _ in range(20)}
    assert len(draws) > 1  # re-paired on every call (every epoch)


def test_paired_inputs_keep_text_context_and_take_audio() -> None:
    past = PastUtterance(sentence=torch.ones(4), audio_stats=torch.zeros(6), speaker="Ross")
    text = UtteranceInput(audio=None, sentence=torch.full((4,), 2.0), tokens=None, speaker="Rachel", context=(past,))
    frames = [torch.randn(5, 3), torch.randn(7, 3)]
    (pair,) = paired_inputs(frames, [text], np.array([1]), np.array([0]))
    assert pair.audio is frames[1] and pair.sentence is text.sentence and pair.context == (past,)
    batch = collate([pair], ModelDims(num_classes=7, audio_dim=3, text_dim=4, context_size=2))
    assert batch.has_audio.all() and batch.has_text.all() and batch.context_mask.tolist() == [[False, True]]


@pytest.mark.parametrize("arch", SEEDS)
def test_fit_fused_trains_every_architecture(arch: str) -> None:
    torch.set_num_threads(1)
    cfg = load_config(REPO_ROOT / "configs" / f"{arch}.yaml")
    ft = dataclasses.replace(cfg.fused_training, epochs=2, patience=5, batch_size=4, max_minutes=0)
    cfg = dataclasses.replace(cfg, fused_training=ft)
    dims = cfg.dims()
    from emostream.models.interface import build_model

    torch.manual_seed(0)
    model = build_model(arch, dims, cfg.model.hparams)
    gen = torch.Generator().manual_seed(0)
    items = [UtteranceInput(audio=torch.randn(40, dims.audio_dim, generator=gen) + i % 7,
                            sentence=torch.randn(dims.text_dim, generator=gen),
                            tokens=torch.randn(3 + i % 4, dims.text_dim, generator=gen), speaker="a")
             for i in range(12)]
    y = np.arange(12) % 7
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def dev() -> tuple[float, dict[str, float]]:
        calls.append(1)
        return float(len(calls)), {"dev": float(len(calls))}

    run = fit_fused(model, cfg, lambda: [Group(items, y, None, True), Group(items[:4], y[:4], None, False)], dev,
                    np.random.default_rng(0))
    assert run["epochs_run"] == 2 and run["best_epoch"] == 1 and run["best_dev"] == 2.0
    changed = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, "no weight moved"
    model.eval()
    with torch.no_grad():
        out = model(collate(items[:3], dims))
    assert out.shape == (3, 7) and torch.isfinite(out).all()


def test_every_seed_config_is_valid_and_fused() -> None:
    for arch in SEEDS:
        cfg = load_config(REPO_ROOT / "configs" / f"{arch}.yaml")
        assert cfg.fused and cfg.model.architecture == arch
        # sentence vectors, or token states for an architecture that reads tokens (models.zoo.default_inputs)
        assert cfg.text_encoder.level in {"sentence", default_inputs(arch)[1].level}
        assert cfg.splits is not None and not set(cfg.splits.ravdess_test_actors) & set(cfg.splits.ravdess_train_actors)


def _set(section: str, key: str, value: Any) -> Callable[[dict], None]:
    return lambda cfg: cfg[section].__setitem__(key, value)


BAD_FUSED_CONFIGS = [
    (_set("fused_training", "modality_dropout", 0.6), r"fused_training.modality_dropout: must be in \[0, 0.5\)"),
    (lambda cfg: cfg.__setitem__("audio_training", yaml.safe_load(
        (REPO_ROOT / "configs" / "baseline.yaml").read_text())["audio_training"]),
     "either fused_training or audio_training"),
    (_set("fused_training", "label_smoothing", 1.0), r"fused_training\.label_smoothing: must be in \[0, 1\)"),
    (_set("fused_training", "neutral_txt", 0.1), r"unknown key fused_training\.neutral_txt"),
    (lambda cfg: cfg.pop("splits"), "missing key splits"),
    # renamed: text_only draws from every text corpus
    (_set("fused_training", "meld_text_only", 3000), r"unknown key fused_training\.meld_text_only"),
    (_set("fused_training", "per_corpus", 500),
     r"fused_training\.per_corpus: fused training pairs every training clip"),
]


@pytest.mark.parametrize(("spoil", "message"), BAD_FUSED_CONFIGS)
def test_fused_config_errors_name_the_key(spoil: Callable[[dict], None], message: str) -> None:
    bad = yaml.safe_load((REPO_ROOT / "configs" / "multab.yaml").read_text())
    spoil(bad)
    with pytest.raises(ConfigError, match=message):
        parse_config(bad)


def test_temperature_fit_and_fold_are_exact() -> None:
    torch.manual_seed(0)
    true = torch.randn(4000, 7) * 2
    y = torch.distributions.Categorical(logits=true).sample()
    assert fit_temperature(true * 3, y) == pytest.approx(3.0, rel=0.1)  # overconfident by 3x → T ≈ 3
    dims = ModelDims(num_classes=7, audio_dim=6, text_dim=4, context_size=1)
    model = LateFusionBaseline(dims, hidden=8).eval()
    batch = collate([UtteranceInput(audio=torch.randn(9, 6), sentence=torch.randn(4), tokens=None)], dims)
    with torch.no_grad():
        audio, text = model.branch_logits(batch)
        fold_temperature(output_layer(model.audio_head, 7), 4.0)
        audio2, text2 = model.branch_logits(batch)
    assert torch.allclose(audio2, audio / 4.0, atol=1e-6) and torch.equal(text2, text)


def test_branch_calibration_softens_an_overconfident_branch() -> None:
    torch.manual_seed(0)
    dims = ModelDims(num_classes=7, audio_dim=6, text_dim=4, context_size=0)
    model = LateFusionBaseline(dims, hidden=8).eval()
    with torch.no_grad():
        output_layer(model.audio_head, 7).weight.mul_(50.0)  # an audio branch that is sure of everything
    audio = [UtteranceInput(audio=torch.randn(9, 6), sentence=None, tokens=None) for _ in range(200)]
    text = [UtteranceInput(audio=None, sentence=torch.randn(4), tokens=None) for _ in range(200)]
    y = np.random.default_rng(0).integers(0, 7, 200)  # labels unrelated to the inputs
    temps = calibrate_branches(model, audio, y, text, y)
    assert temps["audio"] > 5.0
    with torch.no_grad():
        p = model(collate(audio[:50], dims)).softmax(-1)
    assert p.max() < 0.9  # no longer probability 1.0


def test_text_reference_leaves_audio_decision_to_emotionless_words() -> None:
    """Text that says what the reference says cannot move the audio's decision; text alone is untouched."""
    torch.manual_seed(0)
    audio, text = torch.randn(64, 7) * 3, torch.randn(64, 7) * 3
    both, none = torch.ones(64, dtype=torch.bool), torch.zeros(64, dtype=torch.bool)
    plain = fuse_log_probs(audio, text, both, both, 0.5)
    assert not torch.equal(plain.argmax(1), audio.argmax(1))  # without a reference, the words do pull
    for row in range(4):  # each row's text as the reference: that row's fused decision is the audio's
        ref = torch.log_softmax(text[row], -1)
        fused = fuse_log_probs(audio, text, both, both, 0.5, ref)
        assert int(fused[row].argmax()) == int(audio[row].argmax())
        torch.testing.assert_close(fuse_log_probs(audio, text, none, both, 0.5, ref), torch.log_softmax(text, -1))
        torch.testing.assert_close(fuse_log_probs(audio, text, both, none, 0.5, ref), torch.log_softmax(audio, -1))


def test_two_frame_summary_gives_the_audio_branch_the_same_output() -> None:
    torch.manual_seed(0)
    dims = ModelDims(num_classes=7, audio_dim=12, text_dim=TextEncoderSpec().dim, context_size=0)
    model = LateFusionBaseline(dims, hidden=8).eval()
    model.norm.mean.copy_(torch.randn(12))
    model.norm.std.copy_(torch.rand(12) + 0.5)
    clips = [torch.randn(n, 12) * 3 + 1 for n in (5, 40, 300)]
    full = [UtteranceInput(audio=f, sentence=None, tokens=None) for f in clips]
    short = [UtteranceInput(audio=LateFusionBaseline.summarise(f), sentence=None, tokens=None) for f in clips]
    with torch.no_grad():
        torch.testing.assert_close(model(collate(short, dims)), model(collate(full, dims)), atol=1e-5, rtol=1e-5)


def test_confidence_fusion_lets_clear_words_outvote_a_hesitant_voice() -> None:
    """A hesitant voice (near uniform) against clear words: fixed weights can follow the voice's slight lean,
    confidence-scaled weights follow the words; emotionless words still leave the voice's decision alone."""
    both = torch.ones(1, dtype=torch.bool)
    voice = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0]])  # a slight lean to sadness
    words = torch.tensor([[0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]])  # anger, fairly sure
    assert int(fuse_log_probs(voice, words, both, both, 0.8).argmax()) == 4
    assert int(fuse_log_probs(voice, words, both, both, 0.8, by_confidence=True).argmax()) == 3
    ref = torch.log_softmax(words[0], -1)  # words that say exactly what emotionless words say
    fused = fuse_log_probs(voice, words, both, both, 0.8, ref, by_confidence=True)
    assert int(fused.argmax()) == 4
    none = torch.zeros(1, dtype=torch.bool)  # one modality alone: unchanged by the scaling
    torch.testing.assert_close(fuse_log_probs(voice, words, both, none, 0.8, by_confidence=True),
                               torch.log_softmax(voice, -1))
    with pytest.raises(ValueError, match="fusion must be one of fixed, confidence, mixture, mixture_confidence"):
        LateFusionBaseline(ModelDims(num_classes=7, audio_dim=4, text_dim=4, context_size=0), fusion="loud")


def test_mixture_fusion_does_not_let_a_flat_voice_veto_clear_words() -> None:
    """A voice out of the model's domain that all but rules anger out (0.04) and leans to neutral, against words
    that say anger: the product of experts lands on a third class neither modality chose, the mixture follows
    the words; under the mixture too, emotionless words leave the voice's decision alone."""
    both = torch.ones(1, dtype=torch.bool)
    voice = torch.tensor([[0.43, 0.02, 0.01, 0.04, 0.18, 0.31, 0.02]]).log()  # neutral, then disgust
    words = torch.tensor([[0.04, 0.01, 0.02, 0.51, 0.24, 0.16, 0.03]]).log()  # anger
    assert int(fuse_log_probs(voice, words, both, both, 0.5).argmax()) == 5  # disgust: anger vetoed
    mixed = fuse_log_probs(voice, words, both, both, 0.5, mixture=True)
    assert int(mixed.argmax()) == 3
    torch.testing.assert_close(mixed.exp().sum(-1), torch.ones(1))  # normalised
    ref = torch.log_softmax(words[0], -1)
    assert int(fuse_log_probs(voice, words, both, both, 0.5, ref, mixture=True).argmax()) == 0
    none = torch.zeros(1, dtype=torch.bool)
    torch.testing.assert_close(fuse_log_probs(voice, words, none, both, 0.5, ref, True, mixture=True),
                               torch.log_softmax(words, -1))
    torch.testing.assert_close(fuse_log_probs(voice, words, none, none, 0.5, mixture=True),
                               torch.full((1, 7), -math.log(7)))  # nothing present: uniform


def test_text_reference_is_fitted_on_neutral_dev_text_and_travels_in_the_bundle(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dims = ModelDims(num_classes=7, audio_dim=FeatureSpec().dim, text_dim=TextEncoderSpec().dim, context_size=0)
    model = LateFusionBaseline(dims, hidden=8).eval()
    text = [UtteranceInput(audio=None, sentence=torch.randn(dims.text_dim), tokens=None) for _ in range(40)]
    y = np.array([0, 3] * 20)
    ref = fit_text_reference(model, text, y, neutral=0)
    with torch.no_grad():
        expected = model(collate(text[::2], dims)).softmax(-1).mean(0).log()
    np.testing.assert_allclose(ref, expected.numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="no neutral dev utterance"):
        fit_text_reference(model, text, np.full(40, 3), neutral=0)
    meta = _tiny_meta(dims, model.hparams | {"text_reference": ref})
    save_bundle(tmp_path / "ok", LateFusionBaseline(dims, hidden=8, text_reference=ref), meta, "test bundle\n")
    assert load_bundle(tmp_path / "ok").model.text_reference.tolist() == pytest.approx(ref)
    bad = dataclasses.replace(meta, hparams=model.hparams | {"text_reference": ref[:3]})
    save_bundle(tmp_path / "bad", model, bad, "test bundle\n")
    with pytest.raises(BundleError, match="text_reference: needs 7 finite log-probabilities"):
        load_bundle(tmp_path / "bad")


def _tiny_meta(dims: ModelDims, hparams: dict[str, Any]) -> BundleMeta:
    return BundleMeta(id="test-reference", architecture="late_fusion_baseline", hparams=hparams, dims=dims,
                      labels=LABELS, features=FeatureSpec(), text_encoder=TextEncoderSpec(), data_card={})


def _tiny_manifest(root: Path, name: str, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    (root / "clips").mkdir(parents=True, exist_ok=True)
    words = {"joy": "I love this, it is wonderful", "anger": "I am furious, this is outrageous",
             "sadness": "I feel so sad and lonely"}
    rows = ["audio,text,label,speaker,dialogue,turn"]
    for i in range(n):
        label = list(words)[i % 3]
        f0 = {"joy": 260, "anger": 180, "sadness": 110}[label]
        t = np.arange(16000) / 16000
        audio = 0.3 * np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        audio += 0.01 * rng.standard_normal(t.size)
        clip = root / "clips" / f"{name}{i}.wav"
        sf.write(clip, np.concatenate([np.zeros(4000), audio, np.zeros(4000)]).astype(np.float32), 16000)
        rows.append(f'clips/{clip.name},"{words[label]}",{label},spk{i % 4},{name}{i // 3},{i % 3}')
    path = root / f"{name}.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_manifest_config(root: Path, bundle_id: str, sizes: tuple[int, int, int], licence: str,
                         **fused: Any) -> tuple[Path, dict[str, Any]]:
    """Tiny train/dev/test manifests under ``root/data`` and a small dialogue_bilstm_mha config training on them
    (``fused`` overrides its fused_training keys): the config file written to ``root/tiny.yaml``, and its data."""
    for name, n, seed in zip(("train", "dev", "test"), sizes, (0, 1, 2), strict=True):
        _tiny_manifest(root / "data", name, n, seed)
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "dialogue_bilstm_mha.yaml").read_text())
    del cfg["splits"]
    cfg["bundle_id"] = bundle_id
    cfg["model"]["hparams"] = {"lstm_hidden": 8, "lstm_layers": 1, "text_hidden": 16, "heads": 2}
    cfg["fused_training"].update(batch_size=8, max_minutes=0, **fused)
    cfg["manifests"] = {"train": "data/train.csv", "dev": "data/dev.csv", "test": "data/test.csv", "licence": licence}
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    return root / "tiny.yaml", cfg


def test_manifest_train_eval_load(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config, _ = tiny_manifest_config(tmp_path, "tiny-manifest", (24, 9, 9), "CC0 (synthetic test tones)", epochs=3,
                                     patience=3)
    out = tmp_path / "bundle"
    assert train_main(["--config", str(config), "--out", str(out), "--reports",
                       str(tmp_path / "reports"), "--cache", str(tmp_path / "cache")]) == 0
    bundle = load_bundle(out)
    manifest = json.loads((out / "bundle.json").read_text())
    assert set(manifest["scores"]) == {"manifest_test_as_given", "manifest_test_audio", "manifest_test_text"}
    assert manifest["scores"]["manifest_test_as_given"]["n"] == 9
    assert manifest["data_card"]["licence"] == "CC0 (synthetic test tones)"
    assert "CC0 (synthetic test tones)" in (out / "MODEL_CARD.md").read_text()
    assert bundle.meta.architecture == "dialogue_bilstm_mha"
    assert eval_main(["--bundle", str(out), "--corpus", "manifest", "--manifest", str(tmp_path / "data" / "test.csv"),
                      "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "manifest_test_as_given.json").read_text())
    assert again["accuracy"] == pytest.approx(manifest["scores"]["manifest_test_as_given"]["accuracy"], abs=1e-4)


def test_fused_run_on_real_corpora_exports_and_scores_pairs(real_data: Path, tmp_path: Path) -> None:
    """run_fused_training of a seed config on every 40th dialogue/clip of the real corpora it names (RAVDESS, EmoDB,
    nEMO; MELD, GoEmotions): the exported bundle reloads to the same outputs and carries held-out scores for every
    corpus and for the label-matched pairs."""
    for name in ("emodb", "nemo", "goemotions"):
        if not (real_data / name).is_dir():
            pytest.skip(f"{name} not found under {real_data}")
    torch.set_num_threads(1)
    from emostream.training.fused import run_fused_training

    cfg = load_config(REPO_ROOT / "configs" / "cbla_bilstm.yaml")
    cfg = dataclasses.replace(cfg, fused_training=dataclasses.replace(cfg.fused_training, epochs=1, text_only=200))
    out = tmp_path / "bundle"
    run = run_fused_training(cfg, real_data, out, tmp_path / "cache", tmp_path / "reports", every=40)
    manifest = json.loads((out / "bundle.json").read_text())
    assert {"meld_test_text", "ravdess_test_audio", "ravdess_test_fused", "pairs_test_fused", "pairs_test_audio",
            "pairs_test_text", "emodb_test_audio", "nemo_test_audio_telephone", "goemotions_test_text"} \
        <= set(manifest["scores"])
    # three MELD partners per clip; a subsampled MELD test may lack a label, whose clips then go unpaired
    assert 0 < manifest["scores"]["pairs_test_fused"]["n"] <= 3 * manifest["scores"]["ravdess_test_audio"]["n"]
    assert manifest["scores"]["pairs_test_fused"]["n"] % 3 == 0
    training = manifest["data_card"]["training"]
    assert training["temperature"] > 0
    # dev: every audio corpus's dev speakers (paired, and alone), RAVDESS's with their statements, the text dev splits
    assert set(training["run"]["dev_parts"]) == {"pairs_fused", "audio", "own_words_fused", "text"}
    assert set(manifest["data_card"]["corpora"]) == {"emodb", "nemo", "goemotions"}
    card = (out / "MODEL_CARD.md").read_text()
    assert "label-matched" in card and "CC BY-NC-SA 4.0" in card and "Smoke run" in card
    assert "RAVDESS + emodb + nemo" in card and "MELD + goemotions" in card and "Further corpora" in card
    bundle = load_bundle(out)
    dims = cfg.dims()
    items = [UtteranceInput(audio=torch.randn(30, dims.audio_dim), sentence=torch.randn(dims.text_dim), tokens=None)]
    with torch.no_grad():
        assert torch.equal(run.model.eval()(collate(items, dims)), bundle.model(collate(items, dims)))


def test_only_english_clips_are_heard_with_their_own_words() -> None:
    """The live ASR is English: RAVDESS's statements may be a clip's text, nEMO's Polish transcripts and EmoDB's
    missing ones never are (their clips always get a label-matched partner)."""
    from emostream.training.data.records import Utterance
    from emostream.training.fused import own_words

    ravdess = Utterance(audio=Path("a.flac"), text="Kids are talking by the door", label="anger", speaker="actor01",
                        dialogue="d", turn=0, corpus="ravdess")
    assert own_words(ravdess)
    assert not own_words(dataclasses.replace(ravdess, text="Dzieci rozmawiają przy drzwiach", language="pl",
                                             corpus="nemo"))
    assert not own_words(dataclasses.replace(ravdess, text="", language="de", corpus="emodb"))


def test_text_only_batches_leave_batch_norm_statistics_alone() -> None:
    torch.set_num_threads(1)
    from emostream.models.interface import build_model

    cfg = load_config(REPO_ROOT / "configs" / "melcnn_bigru.yaml")
    cfg = dataclasses.replace(cfg, fused_training=dataclasses.replace(cfg.fused_training, epochs=1, max_minutes=0))
    dims = cfg.dims()
    model = build_model("melcnn_bigru", dims, cfg.model.hparams)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    assert stats
    text_only = [UtteranceInput(audio=None, sentence=torch.randn(dims.text_dim), tokens=None) for _ in range(8)]
    fit_fused(model, cfg, lambda: [Group(text_only, np.arange(8) % 7, None, False)], lambda: (0.0, {}),
              np.random.default_rng(0))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    with_audio = [UtteranceInput(audio=torch.randn(20, dims.audio_dim), sentence=None, tokens=None) for _ in range(8)]
    fit_fused(model, cfg, lambda: [Group(with_audio, np.arange(8) % 7, None, True)], lambda: (0.0, {}),
              np.random.default_rng(0))
    assert not all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())  # audio batches do update them
