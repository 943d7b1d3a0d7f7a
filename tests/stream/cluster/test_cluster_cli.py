"""``emo-stream serve --cluster`` before any cluster is involved: without the flag nothing of Ray is imported; a
bad address or config section is a one-line error naming what to fix; an unreachable cluster fails fast."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from emostream.stream.config import load_config
from emostream.stream.errors import UserError
from tests.support.messaging import free_port

NO_RAY = """
import importlib, pkgutil, sys
import emostream.stream as stream
from emostream.stream.server.command import config_for, parser
skip = ("emostream.stream.cluster", "emostream.stream.tools")
for m in pkgutil.walk_packages(stream.__path__, "emostream.stream."):
    if not m.name.startswith(skip):
        importlib.import_module(m.name)
config_for(parser().parse_args(["--port", "9999"]))
loaded = sorted(n for n in sys.modules if n == "ray" or n.startswith("ray."))
print(len([n for n in sys.modules if n.startswith("emostream.stream.")]), loaded)
"""


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EMO_STREAM_TOKENS="tok")
    return subprocess.run([sys.executable, "-m", "emostream.stream.cli", "serve", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_without_cluster_flag_nothing_of_ray_is_imported():
    out = subprocess.run([sys.executable, "-c", NO_RAY], capture_output=True, text=True, timeout=120, check=True)
    modules, loaded = out.stdout.split(" ", 1)
    assert int(modules) > 50  # the whole runtime and server were imported
    assert loaded.strip() == "[]"


def test_unreachable_cluster_is_a_one_line_error_naming_the_address():
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    r = serve("--cluster", address)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"emo-stream: error: --cluster {address}: cannot reach 127.0.0.1:")
    assert "ray start --head" in lines[0]
    assert time.monotonic() - t0 < 60


def test_bad_cluster_address_names_the_key():
    r = serve("--cluster", "head-without-port")
    assert r.returncode == 2
    assert r.stderr.strip() == ("emo-stream: error: command-line option: cluster.address: must be auto, "
                                "ray://HOST:PORT or HOST:PORT, got 'head-without-port'")


def test_shipped_cluster_config_is_valid():
    cfg = load_config(Path(__file__).parents[3] / "configs" / "cluster.yaml")
    assert (cfg.cluster.ingress.min_replicas, cfg.cluster.ingress.max_replicas) == (2, 12)
    assert cfg.server.max_calls == 8 and not cfg.publish.zmq.enabled


@pytest.mark.parametrize(("text", "fragment"), [
    ("cluster: {asr: {min_replicas: 3, max_replicas: 2}}", "cluster.asr.max_replicas: must be at least min_replicas"),
    ("cluster: {ingress: {num_gpu: 1}}", "unknown key 'cluster.ingress.num_gpu'"),
    ("cluster: {text: {max_batch: 0}}", "cluster.text.max_batch: must be at least 1"),
    ("cluster: {proxy_location: Everywhere}", "cluster.proxy_location: must be one of EveryNode, HeadOnly"),
    ("cluster: {inference: {num_cpus: fast}}", "cluster.inference.num_cpus"),
])
def test_cluster_config_errors_name_the_key(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=fragment):
        load_config(path)


def test_deployment_options_follow_the_config():
    from emostream.stream.cluster.application import options
    from emostream.stream.config import DeploymentConfig

    fixed = options(DeploymentConfig(min_replicas=2, max_replicas=2, num_cpus=0.5, num_gpus=0.25), 16)
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"]["num_cpus"] == 0.5 and fixed["ray_actor_options"]["num_gpus"] == 0.25
    assert fixed["max_ongoing_requests"] == 16 and "max_replicas_per_node" not in fixed
    scaled = options(DeploymentConfig(min_replicas=1, max_replicas=5, target_ongoing=3, max_replicas_per_node=1), 8)
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 5, "target_ongoing_requests": 3}
    assert "num_replicas" not in scaled and scaled["max_replicas_per_node"] == 1


def test_features_are_deployed_only_where_the_asr_encodes_cannot_give_them(tmp_path):
    from emostream.models.bundle import DEFAULT_BUNDLE, read_meta
    from emostream.stream.cluster.models import replica_device, why_features_not_shared

    shipped = read_meta(DEFAULT_BUNDLE).features
    spec = replace(shipped, whisper_layer=0)  # the shipped front end at the encoder's output
    cpu = load_config(None)
    assert replica_device(cpu, cpu.cluster.asr) == "cpu"
    assert why_features_not_shared(cpu, spec) == ""  # on CPU replicas: one encode for both
    assert "encoder block 2" in why_features_not_shared(cpu, shipped)  # the shipped bundle's own pass
    path = tmp_path / "gpu.yaml"
    path.write_text("cluster: {asr: {num_gpus: 0.25}}\n")
    gpu = load_config(path)
    assert replica_device(gpu, gpu.cluster.asr) == "cuda"  # auto: the GPU the replica reserves
    assert replica_device(gpu, gpu.cluster.text) == "cpu"  # and none it did not
    assert "the ASR is 'base'" in why_features_not_shared(gpu, spec)  # asr.model auto is base on a GPU


def test_app_builder_reads_its_config_and_refuses_zeromq(tmp_path, monkeypatch):
    from ray.serve import Application

    from emostream.stream.cluster.application import app_builder

    monkeypatch.setenv("EMO_STREAM_TOKENS", "tok")
    good, zmq = tmp_path / "good.yaml", tmp_path / "zmq.yaml"
    good.write_text("cluster: {asr: {min_replicas: 1, max_replicas: 3}}\n")
    zmq.write_text("publish: {zmq: {enabled: true}}\n")
    assert isinstance(app_builder({"config": str(good)}), Application)
    with pytest.raises(UserError, match="--zmq: not with --cluster"):
        app_builder({"config": str(zmq)})
    monkeypatch.delenv("EMO_STREAM_TOKENS")
    with pytest.raises(UserError, match="no tokens: set EMO_STREAM_TOKENS"):
        app_builder({"config": str(good)})
