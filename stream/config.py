"""Runtime configuration: YAML in ``configs/``, validated on load into dataclasses.

Every error names the offending key by its dotted path (``publish.mqtt.port``) and the file.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from emostream.models.whisper_states import PRECISIONS, Precision, native_bfloat16
from emostream.stream.errors import UserError
from emostream.stream.stages.speakers import SpeakerConfig
from emostream.stream.stages.vad import VadConfig

MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; refuse anything absurd before parsing it


@dataclass(frozen=True)
class SourceConfig:
    realtime: bool = False  # pace a replayed file like a live source
    channel_names: tuple[str, ...] = ()  # speaker label per channel; default ch0, ch1, ...
    queue_size: int = 32  # bound of every inter-stage queue
    max_streams: int = 16  # more concurrent streams than this are refused at start


@dataclass(frozen=True)
class AsrConfig:
    # Whisper model: "tiny.en" or "base" (packaged), or "auto": base on a GPU (more accurate, docs/benchmarks.md),
    # tiny.en on a CPU (fast enough to stay ahead of real time on 2 cores).
    model: str = "auto"
    compute_type: str = "int8"
    beam_size: int = 1
    threads: int = 2
    language: str = "en"
    # Whisper's own guards against text on silence/noise: drop a segment that is probably not speech.
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    max_compression_ratio: float = 2.4  # above this a hypothesis is looping text, not speech
    window_s: float = 10.0  # encoder input: utterances are padded to this; 30 = Whisper's own window (benchmarks)
    partial_interval_ms: int = 1000  # a partial transcript per this much speech; 0 switches partials off
    partial_window_s: float = 10.0  # at most this much of the latest audio is decoded for a partial
    # Start the final decode (and the voice and text embeddings) this far into a pause, hidden by the hangover;
    # features start when the pause reaches the post-roll (the exact cut). 0 = off: all after the endpoint.
    speculate_after_ms: int = 60
    # When the bundle's features are this model's encoder states at window_s, one encoder pass per utterance
    # serves both (the final decode then starts on the exact cut, at the post-roll); false: two passes.
    share_encoder: bool = True
    max_batch: int = 16  # encodes / decodes of all streams run as one batch of at most this many

    def __post_init__(self) -> None:
        if self.model not in ("auto", "tiny.en", "base"):
            raise ValueError(f"asr.model: must be auto, tiny.en or base, got {self.model!r}")
        if self.max_batch < 1:
            raise ValueError(f"asr.max_batch: must be at least 1, got {self.max_batch}")

    def resolved(self, device: str, cores: int | None = None) -> AsrConfig:
        """This config with ``model`` chosen for ``device`` ("cpu" or "cuda") when it is "auto", and ``threads`` at
        most ``cores`` (default: the CPUs this process may run on). More threads than cores only make a decode
        wait for its own threads: one process on one core ended its finals 303-337 ms after the speech with 2,
        303-308 ms with 1 (docs/cluster.md)."""
        if cores is None:  # the affinity where the OS has one (Linux), else every CPU
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        model = self.model if self.model != "auto" else "base" if device == "cuda" else "tiny.en"
        return dataclasses.replace(self, model=model, threads=max(1, min(self.threads, cores)))


@dataclass(frozen=True)
class ModelConfig:
    bundle: str = "default"  # a shipped bundle ("default", or "fast": models/bundle.py) or a bundle directory
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_batch: int = 32  # utterances of all streams batched into one forward pass
    max_wait_ms: float = 0.0  # how long a batch's first request waits for company (0: a batch is what queued meanwhile)
    # Arithmetic of the PyTorch encoders (the bundle's Whisper blocks, models/whisper_states.py; the speaker encoder):
    # auto | float32 | bfloat16. auto: bfloat16 on a CPU that has it in hardware (AVX512-BF16 or AMX), else float32.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"model.max_batch: must be at least 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"model.max_wait_ms: must be at least 0, got {self.max_wait_ms}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"model.precision: must be auto, {' or '.join(PRECISIONS)}, got {self.precision!r}")

    def resolved_precision(self, device: torch.device) -> Precision:
        """``precision`` for ``device``: auto is bfloat16 on a CPU that has it (measured there; a GPU keeps
        float32, not measured in bfloat16)."""
        if self.precision == "auto":
            return "bfloat16" if device.type == "cpu" and native_bfloat16(device) else "float32"
        if self.precision == "bfloat16" and not native_bfloat16(device):
            raise UserError(f"model.precision: bfloat16 needs bfloat16 arithmetic in hardware, which {device} lacks "
                            "(a CPU needs AVX512-BF16 or AMX); use auto or float32")
        return "bfloat16" if self.precision == "bfloat16" else "float32"


@dataclass(frozen=True)
class ZmqConfig:
    enabled: bool = False
    endpoint: str = "tcp://127.0.0.1:5556"
    send_hwm: int = 10000  # messages queued per subscriber; beyond that PUB drops for that subscriber only
    curve_secret_key_file: str = ""  # CURVE-encrypt: zmq.auth secret certificate of this server; "" = plaintext

    def __post_init__(self) -> None:
        if self.send_hwm < 1:
            raise ValueError(f"publish.zmq.send_hwm: must be at least 1, got {self.send_hwm}")


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "emostream"
    qos: int = 1
    client_id: str = ""
    connect_attempts: int = 5  # at start-up, before giving up with an error
    backoff_s: float = 0.5  # first retry delay; doubles up to max_backoff_s
    max_backoff_s: float = 5.0
    spool_size: int = 10000  # events held until PUBACK; when full, partials/metrics are dropped, finals wait
    spool_path: str = ""  # SQLite file keeping unacknowledged events across a crash; "" = memory only
    drain_timeout_s: float = 30.0  # at exit, how long to keep trying to deliver what is spooled
    username: str = ""
    password: str = field(default="", repr=False)  # prefer password_env: a secret in a config file leaks easily
    password_env: str = ""  # name of the environment variable holding the password
    tls: bool = False  # TLS with the system's CAs; tls_ca or tls_cert imply it
    tls_ca: str = ""  # CA certificate (PEM) that signed the broker's certificate
    tls_cert: str = ""  # client certificate (PEM), for brokers that require one; needs tls_key
    tls_key: str = ""
    tls_insecure: bool = False  # skip the check that the certificate names the host: for tests only

    def __post_init__(self) -> None:
        if self.spool_size < 1:
            raise ValueError(f"publish.mqtt.spool_size: must be at least 1, got {self.spool_size}")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"publish.mqtt.qos: must be 0, 1 or 2, got {self.qos}")
        if self.password and self.password_env:
            raise ValueError("publish.mqtt.password and publish.mqtt.password_env: give one, not both")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("publish.mqtt.tls_cert and publish.mqtt.tls_key: give both or neither")

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(self.tls_ca or self.tls_cert)


@dataclass(frozen=True)
class PublishConfig:
    stdout: bool = True
    jsonl: str = ""  # also append events to this file
    zmq: ZmqConfig = field(default_factory=ZmqConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)


@dataclass(frozen=True)
class MetricsConfig:
    interval_s: float = 5.0  # a metrics event per stream this often; 0 switches them off
    prometheus_port: int = 0  # serve Prometheus metrics here; 0 switches the endpoint off
    prometheus_host: str = "127.0.0.1"


MEASURES = ("valence", "arousal")  # besides the score of any label (anger, joy, ...)


@dataclass(frozen=True)
class AlertRule:
    """Fires when ``count`` of a speaker's last ``window`` utterances have ``measure`` ``op`` ``threshold``, the
    latest of them included; then not again for that rule and speaker within ``cooldown_s`` of call time.

    With ``span_s`` > 0 it is a trend rule instead: the slope of ``measure`` (per second of call time, least
    squares over the speaker's utterances that ended within the last ``span_s``, at least ``count`` of them)
    compared with ``threshold``, e.g. valence falling faster than 0.02 per second over 30 s."""

    name: str = "customer_anger"
    speaker: str = "customer"  # a speaker name (customer, agent, ch0, spk1, ...); "" = every speaker
    measure: str = "anger"  # a label's score (0..1), or valence / arousal (-1..1)
    op: str = ">="  # >= or <=
    # The default bundle's fused anger on dev speakers (RAVDESS dev actors with their own words, and paired with
    # MELD dev lines of the same label): 0.5 is the lowest threshold with precision >= 0.8 on both
    # (docs/cross_corpus.md).
    threshold: float = 0.5
    count: int = 2
    window: int = 3
    severity: str = "warning"  # info | warning | critical
    cooldown_s: float = 60.0
    span_s: float = 0.0  # > 0: a trend rule over this much call time (window is then unused)

    def __post_init__(self) -> None:
        where = f"alerts.rules[{self.name}]"
        if not self.name:
            raise ValueError("alerts.rules: every rule needs a name")
        if self.op not in (">=", "<="):
            raise ValueError(f"{where}.op: must be >= or <=, got {self.op!r}")
        if self.severity not in ("info", "warning", "critical"):
            raise ValueError(f"{where}.severity: must be info, warning or critical, got {self.severity!r}")
        if self.span_s < 0:
            raise ValueError(f"{where}.span_s: must be at least 0, got {self.span_s}")
        if self.span_s and self.count < 2:
            raise ValueError(f"{where}.count: a trend needs at least 2 utterances, got {self.count}")
        if not self.span_s and not 1 <= self.count <= self.window:
            raise ValueError(f"{where}.count: must be 1..window ({self.window}), got {self.count}")
        if self.cooldown_s < 0:
            raise ValueError(f"{where}.cooldown_s: must be at least 0, got {self.cooldown_s}")


@dataclass(frozen=True)
class AlertsConfig:
    """Supervisor alerts of ``emo-stream serve`` (``stream/observe/alerts.py``)."""

    rules: tuple[AlertRule, ...] = (AlertRule(),)

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"alerts.rules: rule names must be unique, got {names}")


@dataclass(frozen=True)
class ServerConfig:
    """``emo-stream serve``: the WebSocket ingest. Tokens come from the environment (``EMO_STREAM_TOKENS``),
    never from this file, so that a config can be shared without its secrets."""

    host: str = "127.0.0.1"  # 0.0.0.0 to accept calls from other machines
    port: int = 8080
    require_token: bool = True  # false serves without authentication (a trusted network only)
    max_calls: int = 16  # more concurrent calls are refused (WebSocket close 1013 "server full")
    max_message_bytes: int = 65536  # a larger WebSocket message closes its connection (1009)
    idle_timeout_s: float = 30.0  # a connection that sends nothing this long is closed (1001)
    tls_cert: str = ""  # certificate chain (PEM): serve https/wss; needs tls_key
    tls_key: str = ""
    twilio_roles: tuple[str, ...] = ("customer", "agent")  # speaker of Twilio's inbound, outbound track
    summary_keep_s: float = 600.0  # GET /v1/streams/<id> serves a call's final summary this long after it ended

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"server.port: must be 0..65535, got {self.port}")
        if self.max_calls < 1:
            raise ValueError(f"server.max_calls: must be at least 1, got {self.max_calls}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"server.max_message_bytes: must be at least 1024, got {self.max_message_bytes}")
        if self.idle_timeout_s <= 0:
            raise ValueError(f"server.idle_timeout_s: must be positive, got {self.idle_timeout_s}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("server.tls_cert and server.tls_key: give both or neither")
        if len(self.twilio_roles) != 2 or not all(self.twilio_roles):
            raise ValueError(f"server.twilio_roles: two names (inbound, outbound), got {list(self.twilio_roles)}")


@dataclass(frozen=True)
class DeploymentConfig:
    """One Ray Serve deployment of ``emo-stream serve --cluster``: its replicas and what each one reserves.

    ``min_replicas`` below ``max_replicas`` autoscales on the queue (``target_ongoing``); equal, it is fixed."""

    min_replicas: int = 1
    max_replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0  # fractions share a GPU between replicas (e.g. 0.25: four on one GPU)
    max_replicas_per_node: int = 0  # 0 = no limit; 1 spreads the replicas over as many nodes
    target_ongoing: float = 2.0  # autoscaling: requests in flight per replica it aims at
    max_batch: int = 8  # @serve.batch: requests of all calls batched into one model call (models only)
    # How long a batch's first request waits for company (models only); 0: what queued meanwhile, as in one process.
    max_wait_ms: float = 0.0

    def check(self, where: str) -> None:
        if self.min_replicas < 1:
            raise ValueError(f"{where}.min_replicas: must be at least 1, got {self.min_replicas}")
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"{where}.max_replicas: must be at least min_replicas ({self.min_replicas}), "
                             f"got {self.max_replicas}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError(f"{where}.num_cpus / num_gpus: must not be negative")
        if self.max_replicas_per_node < 0:
            raise ValueError(f"{where}.max_replicas_per_node: must be at least 0, got {self.max_replicas_per_node}")
        if self.target_ongoing <= 0:
            raise ValueError(f"{where}.target_ongoing: must be positive, got {self.target_ongoing}")
        if self.max_batch < 1:
            raise ValueError(f"{where}.max_batch: must be at least 1, got {self.max_batch}")
        if self.max_wait_ms < 0:
            raise ValueError(f"{where}.max_wait_ms: must be at least 0, got {self.max_wait_ms}")


PROXY_LOCATIONS = ("EveryNode", "HeadOnly")
DEPLOYMENTS = ("ingress", "asr", "features", "text", "inference")


@dataclass(frozen=True)
class ClusterConfig:
    """``emo-stream serve --cluster``: the Ray Serve application. Calls are served by ``ingress`` replicas (each
    call stays on one); the shared models are the other deployments. The listening address is ``server.host`` /
    ``server.port`` on every node's proxy (``proxy_location``)."""

    address: str = "auto"  # ray://HOST:PORT, HOST:PORT (the GCS) or auto; --cluster overrides it
    app_name: str = "emo-stream"
    proxy_location: str = "EveryNode"  # HeadOnly: one proxy (and one listening port) for the whole cluster
    ingress: DeploymentConfig = field(default_factory=lambda: DeploymentConfig(num_cpus=0.5))
    asr: DeploymentConfig = field(default_factory=DeploymentConfig)
    features: DeploymentConfig = field(default_factory=lambda: DeploymentConfig(num_cpus=0.5))
    text: DeploymentConfig = field(default_factory=lambda: DeploymentConfig(num_cpus=0.25))
    inference: DeploymentConfig = field(default_factory=lambda: DeploymentConfig(num_cpus=0.25, max_batch=32))

    def __post_init__(self) -> None:
        if self.address != "auto" and not _host_port(self.address.removeprefix("ray://")):
            raise ValueError(f"cluster.address: must be auto, ray://HOST:PORT or HOST:PORT, got {self.address!r}")
        if not self.app_name:
            raise ValueError("cluster.app_name: must not be empty")
        if self.proxy_location not in PROXY_LOCATIONS:
            raise ValueError(f"cluster.proxy_location: must be one of {', '.join(PROXY_LOCATIONS)}, "
                             f"got {self.proxy_location!r}")
        for name in DEPLOYMENTS:
            getattr(self, name).check(f"cluster.{name}")


def _host_port(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    speakers: SpeakerConfig = field(default_factory=SpeakerConfig)  # mono streams only; stereo uses channels
    server: ServerConfig = field(default_factory=ServerConfig)  # emo-stream serve only
    alerts: AlertsConfig = field(default_factory=AlertsConfig)  # emo-stream serve only
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # emo-stream serve --cluster only


def build(cls: type, data: Any, where: str) -> Any:
    """Builds dataclass ``cls`` from a mapping, checking keys and types recursively."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'top level'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(data) - names):
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ValueError(f"unknown key {key!r}; known keys here: {', '.join(sorted(names))}")
    values = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], value, key)
    return cls(**values)  # __post_init__ checks raise ValueError naming their own keys


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        (item,) = set(typing.get_args(hint)) - {Ellipsis}
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(option, value, key)
            except ValueError:
                continue
        raise ValueError(f"{key}: {value!r} does not fit {hint}")
    if hint is type(None):
        if value is not None:
            raise ValueError(f"{key}: expected null")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def load_config(path: Path | None) -> Config:
    """The defaults, overlaid with a YAML file if given."""
    if path is None:
        return Config()
    if not path.is_file():
        raise UserError(f"config {path}: no such file; pass --config with a YAML file (see configs/)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(f"config {path}: larger than {MAX_CONFIG_BYTES} bytes; is this really a config file?")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    try:
        return build(Config, data, "")
    except ValueError as e:
        raise UserError(f"config {path}: {e}") from None


def override(config: Config, **sections: dict[str, Any]) -> Config:
    """A copy with some fields of some sections replaced, validated like the file (for CLI flags)."""
    as_dict = dataclasses.asdict(config)
    for section, values in sections.items():
        node = as_dict
        *parents, leaf = section.split(".")
        for p in parents:
            node = node[p]
        node[leaf].update({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
    try:
        return build(Config, _lists(as_dict), "")
    except ValueError as e:
        raise UserError(f"command-line option: {e}") from None


def _lists(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _lists(v) for k, v in d.items()}
    return list(d) if isinstance(d, tuple) else d
