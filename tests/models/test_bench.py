"""The model benchmark's ``--variant``: a row with other hyper-parameters, and a clear message for a bad one."""

from __future__ import annotations

import pytest

from emostream.models.bench import parse_variant


def test_variant_reads_hyper_parameters_as_yaml() -> None:
    assert parse_variant("late_fusion_baseline:audio_pool=attentive,hidden=128") == (
        "late_fusion_baseline", {"audio_pool": "attentive", "hidden": 128})


@pytest.mark.parametrize("text", ["late_fusion_baseline", "late_fusion_baseline:audio_pool", "nosuch:hidden=1",
                                  "late_fusion_baseline:hidden=[1"])
def test_a_bad_variant_is_a_message(text: str) -> None:
    with pytest.raises(SystemExit, match=r"--variant .*(write ARCH:KEY=VALUE|not valid YAML)"):
        parse_variant(text)
