"""Security of the bus against real components: MQTT login over TLS (a mosquitto with a CA, a server certificate and
a password file made here with openssl and mosquitto_passwd), and ZeroMQ CURVE encryption."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import zmq
import zmq.auth

from emostream.stream.config import MqttConfig, ZmqConfig
from emostream.stream.errors import BrokerUnreachable, UserError
from emostream.stream.events import MetricsEvent
from emostream.stream.publishers.mqtt import MqttPublisher
from emostream.stream.publishers.zeromq import ZmqPublisher
from tests.stream.cli_run import run_cli
from tests.support import dialogues as dlg
from tests.support.messaging import MosquittoBroker, free_port

USER, SECRET, WRONG = "emo", "corr3ct-h0rse-b4ttery", "wr0ng-St4ple-9000"
PASSWORD_ENV = "EMO_TEST_MQTT_PASSWORD"


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(folder: Path) -> Pki:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost, signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run([dlg.require_binary("openssl"), *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=emo-test-ca")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.cnf")
    return Pki(folder / "ca.crt", folder / "server.crt", folder / "server.key")


class SecureBroker(MosquittoBroker):
    """mosquitto with one TLS listener and a password file: no anonymous access."""

    def __init__(self, binary: str, workdir: Path, pki: Pki, password_file: Path) -> None:
        super().__init__(binary, workdir)
        self.pki, self.password_file = pki, password_file

    def _write_config(self) -> None:
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            f"cafile {self.pki.ca}\ncertfile {self.pki.cert}\nkeyfile {self.pki.key}\n"
            f"allow_anonymous false\npassword_file {self.password_file}\n"
            f"persistence false\nuser {pwd.getpwuid(os.getuid()).pw_name}\nlog_dest stderr\n"
        )


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    work = tmp_path_factory.mktemp("secure-broker")
    pki = make_pki(work / "pki")
    password_file = work / "passwd"
    subprocess.run([dlg.require_binary("mosquitto_passwd"), "-c", "-b", str(password_file), USER, SECRET],
                   check=True, capture_output=True)
    password_file.chmod(0o600)
    broker = SecureBroker(dlg.require_binary("mosquitto"), work, pki, password_file)
    broker.start()
    yield broker
    broker.stop()


def tls_subscriber(broker: SecureBroker, received: list[bytes]) -> paho.Client:
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.tls_set(ca_certs=str(broker.pki.ca))
    client.username_pw_set(USER, SECRET)
    client.on_connect = lambda c, *_: c.subscribe("emostream/#", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda c, u, msg: received.append(bytes(msg.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert subscribed.wait(10), "the test subscriber could not log in over TLS"
    return client


def mqtt_config(broker: SecureBroker, **kw: object) -> MqttConfig:
    base = {"enabled": True, "host": broker.host, "port": broker.port, "username": USER, "password_env": PASSWORD_ENV,
            "tls_ca": str(broker.pki.ca), "connect_attempts": 2, "backoff_s": 0.1}
    return MqttConfig(**(base | kw))


def metrics(n: int) -> MetricsEvent:
    return MetricsEvent(stream_id="secure", emitted_at=float(n), window_s=5.0, audio_s=1.0, wall_s=1.0,
                        real_time_factor=1.0, utterances=n, latency_ms={}, queue_depths={}, dropped_partials=0,
                        input_overruns=0)


def test_login_over_tls_delivers_and_never_logs_the_secret(secure_broker, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    received: list[bytes] = []
    sub = tls_subscriber(secure_broker, received)
    cfg = mqtt_config(secure_broker)
    assert SECRET not in repr(mqtt_config(secure_broker, password=SECRET, password_env=""))

    async def send() -> MqttPublisher:
        pub = MqttPublisher(cfg, "tls-test")
        await pub.start()
        for n in range(1, 4):
            await pub.publish(metrics(n))
        await pub.close()
        return pub

    try:
        assert asyncio.run(send()).delivered == 3
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert sorted(received) == sorted(metrics(n).to_json().encode() for n in range(1, 4))
    assert SECRET not in caplog.text


def test_wrong_password_is_one_clear_line_exit_3_without_the_secret(secure_broker, tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text(f"publish:\n  mqtt:\n    username: {USER}\n    password_env: {PASSWORD_ENV}\n"
                      f"    tls_ca: {secure_broker.pki.ca}\n")
    monkeypatch.setenv(PASSWORD_ENV, WRONG)  # inherited by the CLI's process
    r = run_cli("--replay", str(dlg.EXAMPLE_JSON.with_suffix(".flac")), "--config", str(config),
                "--mqtt", f"{secure_broker.host}:{secure_broker.port}", timeout=120)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "refused the connection" in lines[0] and "password" in lines[0]
    assert WRONG not in r.stderr + r.stdout and SECRET not in r.stderr + r.stdout


def test_untrusted_certificate_or_missing_secret_fail_clearly(secure_broker, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    untrusted = mqtt_config(secure_broker, tls_ca="", tls=True)  # the system's CAs do not know our test CA
    with pytest.raises(BrokerUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(MqttPublisher(untrusted, "t").start())
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(UserError, match=PASSWORD_ENV) as err:
        asyncio.run(MqttPublisher(mqtt_config(secure_broker), "t").start())
    assert err.value.exit_code == 2


def curve_subscriber(ctx: zmq.Context, endpoint: str, server_public: bytes | None) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if server_public is not None:
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
        sock.curve_serverkey = server_public
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def test_zmq_curve_only_subscribers_with_the_server_key_receive(tmp_path):
    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "server")
    server_public, _ = zmq.auth.load_certificate(public_file)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = ZmqConfig(enabled=True, endpoint=endpoint, curve_secret_key_file=secret_file)
    ctx = zmq.Context()
    keyed = curve_subscriber(ctx, endpoint, server_public)
    plain = curve_subscriber(ctx, endpoint, None)
    got: dict[str, list[list[bytes]]] = {"keyed": [], "plain": []}

    def drain() -> None:
        for name, sock in (("keyed", keyed), ("plain", plain)):
            while sock.poll(0):
                got[name].append(sock.recv_multipart())

    async def run() -> None:
        pub = ZmqPublisher(cfg, "emostream")
        await pub.start()
        deadline = time.monotonic() + 10
        n = 0
        while time.monotonic() < deadline and len(got["keyed"]) < 20:  # past the handshake, then 20 messages
            n += 1
            await pub.publish(metrics(n))
            await asyncio.sleep(0.02)
            drain()
        await pub.close()

    try:
        asyncio.run(run())
        time.sleep(0.2)
        drain()
    finally:
        keyed.close()
        plain.close()
        ctx.term()
    assert len(got["keyed"]) >= 20
    assert got["keyed"][0][0] == b"emostream/secure/metrics"
    assert got["plain"] == [], "a subscriber without the server's public key must receive nothing"

    with pytest.raises(UserError, match="only a public key"):
        asyncio.run(ZmqPublisher(ZmqConfig(endpoint=endpoint, curve_secret_key_file=str(public_file)), "e").start())
