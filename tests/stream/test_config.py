"""Configuration: the documented file is exactly the defaults, and every mistake names its key."""

from __future__ import annotations

import os

import pytest

from emostream.stream.config import AsrConfig, Config, load_config, override
from emostream.stream.errors import UserError
from tests import REPO_ROOT


def test_documented_defaults_are_the_defaults():
    assert load_config(REPO_ROOT / "configs" / "default.yaml") == Config()


@pytest.mark.parametrize("text, fragment", [
    ("publish:\n  mqtt:\n    portt: 3\n", "'publish.mqtt.portt'"),
    ("publish:\n  mqtt:\n    port: x\n", "publish.mqtt.port: expected int"),
    ("vad: {aggressiveness: 7}\n", "vad.aggressiveness"),
    ("speakers: {threshold: 2.0}\n", "speakers.threshold"),
    ("source: {channel_names: agent}\n", "source.channel_names: expected a list"),
    ("source: [1, 2]\n", "source: expected a mapping"),
    ("asr: {beam_size: true}\n", "asr.beam_size: expected int"),
    ("model: {bundle: 3\n", "not valid YAML"),
    ("server: {max_calls: 0}\n", "server.max_calls"),
    ("server: {tls_cert: a.pem}\n", "server.tls_cert and server.tls_key"),
    ("server: {twilio_roles: [customer]}\n", "server.twilio_roles"),
    ("server: {tokens: abc}\n", "'server.tokens'"),
    ("model: {precision: fp8}\n", "model.precision: must be auto, float32 or bfloat16, got 'fp8'"),
])
def test_errors_name_the_key(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=r"c\.yaml") as err:
        load_config(path)
    assert fragment in str(err.value)


def test_overrides_are_validated_like_the_file():
    cfg = override(Config(), **{"publish.mqtt": {"enabled": True, "port": 1884}})
    assert cfg.publish.mqtt.port == 1884 and cfg.publish.mqtt.enabled
    with pytest.raises(UserError, match=r"publish\.mqtt\.port"):
        override(Config(), **{"publish.mqtt": {"port": "high"}})


def test_oversized_config_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("#" * (2 << 20))
    with pytest.raises(UserError, match="larger than"):
        load_config(path)


def test_asr_threads_never_exceed_the_cores_this_process_may_use():
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})  # as under `taskset -c 0`
        assert AsrConfig(threads=2).resolved("cpu").threads == 1
    finally:
        os.sched_setaffinity(0, before)
    assert AsrConfig(threads=2).resolved("cpu", cores=1).threads == 1  # a Ray replica reserving one CPU
    assert AsrConfig(threads=2).resolved("cpu", cores=8).threads == 2
    assert AsrConfig(threads=4).resolved("cpu", cores=0).threads == 1
