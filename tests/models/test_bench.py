"""The model benchmark's ``--variant`` (a row with other hyper-parameters, a clear message for a bad one) and
``--bundle`` (a bundle's model on its own inputs)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from emostream.models.bench import main, parse_variant, row
from emostream.models.bundle import load_bundle

DEFAULT = Path(__file__).resolve().parents[2] / "models" / "bundles" / "default"


def test_variant_reads_hyper_parameters_as_yaml() -> None:
    assert parse_variant("late_fusion_baseline:audio_pool=attentive,hidden=128") == (
        "late_fusion_baseline", {"audio_pool": "attentive", "hidden": 128})


@pytest.mark.parametrize("text", ["late_fusion_baseline", "late_fusion_baseline:audio_pool", "nosuch:hidden=1",
                                  "late_fusion_baseline:hidden=[1"])
def test_a_bad_variant_is_a_message(text: str) -> None:
    with pytest.raises(SystemExit, match=r"--variant .*(write ARCH:KEY=VALUE|not valid YAML)"):
        parse_variant(text)


def test_a_bundle_row_times_its_model_on_its_own_inputs(tmp_path: Path) -> None:
    bundle = load_bundle(DEFAULT)
    meta = bundle.meta
    args = argparse.Namespace(seconds=3.0, tokens=16, repeats=2)
    line = row(f"bundle {meta.id}", bundle.model, meta.features, meta.text_encoder, args)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[0] == f"`bundle {meta.id}`" and cells[3] == "token (16)"  # its tuned text layers get tokens
    assert cells[2] == f"whisper {meta.features.dim}-d, 151 frames"
    assert all(float(c) > 0 for c in cells[4:])
    with pytest.raises(SystemExit, match=re.escape(str(tmp_path))):
        main(["--repeats", "1", "--bundle", str(tmp_path)])
