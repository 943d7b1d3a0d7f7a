"""Training over several corpora of the registry, and the leave-one-corpus-out command, end to end on a small
subset of the real corpora (MFCC features, so that it runs in seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from emostream.models.bundle import DEFAULT_BUNDLE, load_bundle
from emostream.models.labels import LABELS
from emostream.training import seeds
from emostream.training.config import ConfigError, load_config, parse_config
from emostream.training.cross_corpus import run as cross_corpus
from emostream.training.data.registry import CORPORA
from emostream.training.splits import subsample
from emostream.training.train import branch_fingerprints, epoch_order, run_training
from tests import REPO_ROOT


def _config(**changes: object) -> dict:
    data = yaml.safe_load((REPO_ROOT / "configs" / "baseline.yaml").read_text())
    data["audio_training"].update(epochs=3, patience=2, telephone=0.5, speed=0.2, running_order=0.3,
                                  first_utterance=0.2, new_domain=0.2)
    data["text_training"].update(epochs=1, patience=1, per_corpus=150)
    return data | {"audio_corpora": ["ravdess", "emodb"], "text_corpora": ["meld", "goemotions"],
                   "speaker_norm_frames": 100} | changes


@pytest.fixture
def more_data(real_data: Path) -> Path:
    for name in ("emodb", "goemotions"):
        if not (real_data / name).is_dir():
            pytest.skip(f"{name} not found under {real_data}")
    return real_data


def test_config_names_registry_corpora() -> None:
    with pytest.raises(ConfigError, match=r"audio_corpora: .* must start with 'ravdess'"):
        parse_config(_config(audio_corpora=["emodb"]))
    with pytest.raises(ConfigError, match=r"text_corpora: .*'nemo'"):
        parse_config(_config(text_corpora=["meld", "nemo"]))
    bad = _config()
    bad["audio_training"]["telephone"] = 1.5
    with pytest.raises(ConfigError, match="telephone in \\[0, 1\\]"):
        parse_config(bad)
    bad = _config()
    bad["audio_training"]["first_utterance"] = 0.8
    with pytest.raises(ConfigError, match="audio_training: running_order \\+ first_utterance \\+ new_domain must"):
        parse_config(bad)
    bad = _config(audio_corpora=["ravdess"])
    bad["audio_training"]["new_domain"] = 0.2
    with pytest.raises(ConfigError, match=r"audio_training\.new_domain: needs a prior fitted on other corpora"):
        parse_config(bad)
    with pytest.raises(ConfigError, match="set speaker_norm_frames > 0"):
        parse_config(_config(speaker_norm_frames=0))
    bad = _config()
    bad["text_training"]["per_corpus_of"] = {"emodb": 10}
    with pytest.raises(ConfigError, match=r"text_training.per_corpus_of.emodb: not one of this branch's corpora"):
        parse_config(bad)


def test_overrides_make_a_variant_and_name_a_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(_config()))
    cfg = load_config(path, ["model.hparams.audio_pool=attentive", "text_corpora=[meld, goemotions, dailydialog]"])
    assert cfg.model.hparams["audio_pool"] == "attentive" and cfg.text_corpora == ["meld", "goemotions", "dailydialog"]
    with pytest.raises(ConfigError, match=r"override 'modle.hparams.x=1': modle is not a section"):
        load_config(path, ["modle.hparams.x=1"])
    with pytest.raises(ConfigError, match=r"recipe.yaml: text_corpora: .*'nemo'"):
        load_config(path, ["text_corpora=[meld, nemo]"])
    with pytest.raises(ConfigError, match="write KEY=VALUE"):
        load_config(path, ["audio_pool"])
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"empty.yaml: override 'seed=1': the config is not a mapping"):
        load_config(empty, ["seed=1"])


def test_epoch_draws_per_corpus_limits() -> None:
    corpus_of = ["meld"] * 50 + ["goemotions"] * 200
    perm = epoch_order(len(corpus_of), torch.Generator().manual_seed(0), corpus_of, 30, {"meld": 0})
    drawn = [corpus_of[j] for j in perm.tolist()]
    assert drawn.count("meld") == 50 and drawn.count("goemotions") == 30 and len(set(perm.tolist())) == 80
    assert perm.tolist() != sorted(perm.tolist())  # shuffled, corpora interleaved


def test_multicorpus_bundle_cards_and_scores(more_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = _config()
    data["model"]["hparams"]["audio_members"] = 2  # the audio branch a deep ensemble of two
    data["audio_training"]["per_corpus"] = 40  # RAVDESS's 80 training clips here drawn 40 an epoch
    cfg = parse_config(data)
    out = tmp_path / "bundle"
    run_training(cfg, more_data, out, tmp_path / "cache", tmp_path / "reports", every=12)
    manifest = json.loads((out / "bundle.json").read_text())
    run = manifest["data_card"]["training"]["audio_run"]
    assert len(run["members"]) == 2 and run["epochs_run"] == sum(m["epochs_run"] for m in run["members"])
    assert (tmp_path / "reports" / "checkpoints" / "audio_1.pt").is_file()
    first, second = load_bundle(out).model.audio_head.members
    assert not torch.equal(first[0].weight, second[0].weight)
    scores = manifest["scores"]
    assert {"emodb_test_audio", "emodb_test_audio_telephone", "goemotions_test_text",
            "ravdess_test_audio_telephone"} <= set(scores)
    corpora = manifest["data_card"]["corpora"]
    assert corpora["emodb"]["speakers"]["test"] == ["emodb15", "emodb16"] and corpora["emodb"]["language"] == "de"
    assert "goemotions: CC BY 4.0" in manifest["data_card"]["licence"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "Further corpora" in card and "Burkhardt" in card and "emodb_test_audio_telephone" in card
    assert "a deep ensemble of 2 MLPs" in card and f"dev UA of the ensemble {run['best_dev']:.3f}" in card
    assert "Each epoch draws afresh at most 40 of each corpus." in card
    emodb = json.loads((tmp_path / "reports" / "emodb_test_audio.json").read_text())
    assert emodb["classes"] == list(CORPORA["emodb"].classes) and 0 <= emodb["ece"] <= 1
    assert emodb["per_class"]["surprise"]["support"] == 0 and emodb["per_class"]["surprise"]["precision"] == 0
    assert load_bundle(out).meta.scores["emodb_test_audio"]["n"] == emodb["n"]


def test_leave_one_corpus_out_table(more_data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = parse_config(_config())
    out = tmp_path / "loco"
    results = cross_corpus(cfg, more_data, tmp_path / "cache", out, ("audio",), every=12)
    assert set(results) == {"ravdess", "emodb"}
    assert results["emodb"]["trained_on"] == ["ravdess"] and results["ravdess"]["trained_on"] == ["emodb"]
    emodb = results["emodb"]["clean"]
    whole = sum(len(subsample(v, 12)) for v in CORPORA["emodb"].splits(more_data).values())
    assert emodb["n"] == whole and emodb["per_class"]["surprise"]["support"] == 0
    # The clean scores split by the left-out corpus's own speakers: its test speakers apart from the rest.
    tested = len(subsample(CORPORA["emodb"].splits(more_data)["test"], 12))
    choice, test = results["emodb"]["choice"], results["emodb"]["test"]
    assert test["n"] == tested > 0 and choice["n"] == whole - tested > 0
    for name in LABELS:
        parts = choice["per_class"][name]["support"] + test["per_class"][name]["support"]
        assert parts == emodb["per_class"][name]["support"]
    table = (out / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| emodb | ")]
    assert [r.split(" | ")[1] for r in rows] == ["clean", "clean, choice speakers", "clean, test speakers", "first",
                                                 "telephone"]
    assert not (out / "emodb_choice.png").exists()
    assert (out / "emodb_telephone.png").is_file() and json.loads((out / "cross_corpus.json").read_text())["results"]


def test_leave_one_corpus_out_runs_a_seed_recipe(more_data: Path, tmp_path: Path) -> None:
    """A fused seed config goes through the same table: in each fold the whole model trains on the other audio
    corpora paired with the text corpora, early-stops on the fused dev mean, and the left-out corpus is scored
    whole by voice alone."""
    torch.set_num_threads(1)
    data = yaml.safe_load((REPO_ROOT / "configs" / "melcnn_bigru.yaml").read_text())
    data["fused_training"].update(epochs=1, text_only=100, max_minutes=0)
    cfg = parse_config(data | {"audio_corpora": ["ravdess", "emodb"], "text_corpora": ["meld"]})
    loco = tmp_path / "seeds" / "loco" / "melcnn_bigru"
    results = cross_corpus(cfg, more_data, tmp_path / "cache", loco, ("audio", "text"), every=12)
    assert set(results) == {"ravdess", "emodb"}  # one text corpus: nothing to leave out
    emodb = results["emodb"]
    assert emodb["trained_on"] == ["ravdess"] and 0 < emodb["dev"] <= 1 and emodb["epochs_run"] == 1
    assert emodb["dev"] == pytest.approx(sum(emodb["dev_parts"].values()) / len(emodb["dev_parts"]))
    whole = sum(len(subsample(v, 12)) for v in CORPORA["emodb"].splits(more_data).values())
    assert emodb["clean"]["n"] == emodb["telephone"]["n"] == emodb["first"]["n"] == whole
    assert emodb["clean"]["classes"] == list(CORPORA["emodb"].classes)
    assert "| emodb | telephone | ravdess |" in (loco / "table.md").read_text()

    # The seeds' report reads the run beside the default's own leave-one-corpus-out results and bundle.
    default_loco = REPO_ROOT / "docs" / "results" / "cross_corpus" / "cross_corpus.json"
    text = seeds.report(tmp_path / "seeds", default_loco, DEFAULT_BUNDLE)
    rows = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    assert set(rows) == {"default", "melcnn_bigru"} and (tmp_path / "seeds" / "seeds.png").is_file()
    seed = rows["melcnn_bigru"]["loco"]["emodb"]
    assert seed["ua"] == emodb["clean"]["unweighted_recall"] and seed["dev_audio"] == emodb["dev_parts"]["audio"]
    default = json.loads(default_loco.read_text())["results"]["nemo"]
    assert rows["default"]["loco"]["nemo"]["telephone"] == default["telephone"]["unweighted_recall"]
    assert rows["default"]["tests"]["MELD wF1"] == load_bundle(DEFAULT_BUNDLE).meta.scores["meld_test_text"][
        "weighted_f1"]
    assert "nemo" not in rows["melcnn_bigru"]["loco"] and text.count("| melcnn_bigru |") == 2


def test_branch_checkpoints_survive_a_rename_and_the_other_branch() -> None:
    """A bundle renamed, or one branch's settings changed, resumes the other branch's finished checkpoint."""
    base = parse_config(_config())
    renamed = parse_config(_config(bundle_id="another-name"))
    text_changed = _config()
    text_changed["text_training"]["epochs"] = 7
    audio_changed = _config()
    audio_changed["audio_training"]["telephone"] = 0.25
    ensemble = _config()
    ensemble["model"]["hparams"]["audio_members"] = 5
    prints = {name: branch_fingerprints(cfg, every=1) for name, cfg in (
        ("base", base), ("renamed", renamed), ("text", parse_config(text_changed)),
        ("audio", parse_config(audio_changed)), ("ensemble", parse_config(ensemble)))}
    assert prints["renamed"] == prints["base"]
    assert prints["text"]["audio"] == prints["base"]["audio"] != prints["audio"]["audio"]
    assert prints["audio"]["text"] == prints["base"]["text"] != prints["text"]["text"]
    assert prints["ensemble"]["text"] == prints["base"]["text"] and prints["ensemble"]["audio"] != prints["base"][
        "audio"]
    assert branch_fingerprints(base, every=10) != prints["base"]
