"""The front-end probe's command line: ``--set`` reaches the config it probes, validated like the file."""

from __future__ import annotations

import pytest

from emostream.training.probe_front_ends import main
from tests import REPO_ROOT


def test_a_variant_is_validated_by_key(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--config", str(REPO_ROOT / "configs" / "multicorpus.yaml"), "--set", "features.whisper=small",
              "--data", str(tmp_path), "--out", str(tmp_path / "probe.json")])
    assert e.value.code == 2
    assert "whisper 'small' is not packaged" in capsys.readouterr().err  # the variant, not the file's tiny.en
