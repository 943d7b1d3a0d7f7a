"""Real messaging components for tests: a mosquitto broker, an MQTT subscriber, a ZeroMQ SUB in another process."""

from __future__ import annotations

import base64
import json
import os
import pwd
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import zmq

HOST = "127.0.0.1"
_ZMQ_SUB_SCRIPT = Path(__file__).with_name("zmq_sub_proc.py")


def free_port(host: str = HOST) -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_tcp(host: str, port: int, timeout_s: float, alive: Any = None) -> bool:
    """True once a TCP connect to host:port succeeds; False on timeout or when ``alive()`` turns false."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --------------------------------------------------------------------------------------------------- mosquitto


class MosquittoBroker:
    """A real ``mosquitto`` broker on ``127.0.0.1:port`` with a minimal config (anonymous, no persistence).

    ``stop()`` and ``start()`` may be called repeatedly; the port stays the same, so clients can reconnect.
    """

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.workdir = Path(workdir)
        self.host = HOST
        self.port = port or free_port()
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_config(self) -> None:
        user = pwd.getpwuid(os.getuid()).pw_name  # as root, mosquitto would otherwise drop to user "mosquitto"
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"user {user}\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the broker (no-op if running) and wait until it accepts TCP connections."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        deadline = time.monotonic() + timeout_s
        while True:
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [self.binary, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
                )
            proc = self._proc
            if _wait_tcp(self.host, self.port, max(0.5, deadline - time.monotonic()), lambda p=proc: p.poll() is None):
                return
            # The port may still be held by the previous instance's sockets for a moment: retry until the deadline.
            self.stop()
            if time.monotonic() >= deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{self.log_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --------------------------------------------------------------------------------------------------- MQTT subscriber


@dataclass(frozen=True)
class MqttMessage:
    """One message received by :class:`MqttCollector`."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received_at: float  # time.time() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttCollector:
    """A paho-mqtt subscriber running in a background thread.

    Subscribes to ``topic_filter`` with ``qos`` and blocks until the broker's SUBACK, so anything published after
    construction is received. After a broker restart it reconnects and subscribes again by itself (the broker keeps
    no sessions); :meth:`wait_subscribed` waits for that.
    """

    def __init__(self, host: str, port: int, topic_filter: str = "#", qos: int = 1, timeout_s: float = 10.0) -> None:
        self.topic_filter, self.qos = topic_filter, qos
        self._messages: list[MqttMessage] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"collector-{uuid.uuid4().hex[:12]}", protocol=paho.MQTTv311
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect
        self._client.connect(host, port, keepalive=10)
        self._client.loop_start()
        if not self.wait_subscribed(timeout_s):
            self.close()
            raise TimeoutError(f"no SUBACK for {topic_filter!r} from {host}:{port} within {timeout_s} s")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic_filter, qos=self.qos)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self._subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._subscribed.clear()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(MqttMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.time()))
            self._cond.notify_all()

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        """True once (re)connected and the subscription acknowledged."""
        return self._subscribed.wait(timeout_s)

    def messages(self) -> list[MqttMessage]:
        """A copy of everything received so far, in arrival order."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[MqttMessage]:
        """Wait until at least ``count`` messages arrived (or the timeout); return all received so far."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._messages) >= count, timeout=timeout_s)
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# --------------------------------------------------------------------------------------------------- ZeroMQ subscriber


@dataclass(frozen=True)
class ZmqMessage:
    """One multipart message received by :class:`ZmqCollector` (usually ``[topic, json]``)."""

    frames: tuple[bytes, ...]
    received_at: float  # time.time() in the collector process on arrival

    @property
    def topic(self) -> str:
        return self.frames[0].decode("utf-8", errors="replace")

    @property
    def payload(self) -> bytes:
        return self.frames[-1]

    def json(self) -> Any:
        return json.loads(self.payload)


class ZmqCollector:
    """A ZeroMQ SUB socket in another process (``zmq_sub_proc.py``) that relays what it receives to this one.

    It connects to (or, with ``bind=True``, binds) ``endpoint``, subscribes to ``prefix`` and collects until
    :meth:`stop` or ``timeout_s``. Messages whose topic is :attr:`probe_topic` (see :meth:`sync`) are left out of
    results.
    """

    PROBE_SUFFIX = "__probe__"

    def __init__(self, endpoint: str, prefix: str = "", *, bind: bool = False, timeout_s: float = 120.0) -> None:
        self.endpoint, self.prefix = endpoint, prefix
        self.probe_topic = prefix + self.PROBE_SUFFIX
        cmd = [sys.executable, str(_ZMQ_SUB_SCRIPT), endpoint, "--prefix", prefix, "--timeout-s", str(timeout_s)]
        if bind:
            cmd.append("--bind")
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._messages: list[ZmqMessage] = []
        self._ready = threading.Event()
        self._ended = threading.Event()
        self.end_info: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="zmq-collector-reader", daemon=True)
        self._reader.start()
        if not self._ready.wait(15.0):
            err = self._kill()
            raise RuntimeError(f"zmq collector process did not become ready for {endpoint}: {err}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            event = json.loads(line)
            if event["event"] == "ready":
                self._ready.set()
            elif event["event"] == "message":
                msg = ZmqMessage(tuple(base64.b64decode(f) for f in event["frames"]), event["t"])
                with self._cond:
                    self._messages.append(msg)
                    self._cond.notify_all()
            elif event["event"] == "end":
                self.end_info = event
        self._ended.set()
        with self._cond:
            self._cond.notify_all()

    def _real(self, msgs: list[ZmqMessage]) -> list[ZmqMessage]:
        return [m for m in msgs if m.topic != self.probe_topic]

    def messages(self) -> list[ZmqMessage]:
        """Everything received so far (probes excluded), in arrival order."""
        with self._cond:
            return self._real(self._messages)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[ZmqMessage]:
        """Wait until at least ``count`` non-probe messages arrived (or timeout / process end); return them all."""
        with self._cond:
            self._cond.wait_for(
                lambda: len(self._real(self._messages)) >= count or self._ended.is_set(), timeout=timeout_s
            )
            return self._real(self._messages)

    def sync(self, pub: zmq.Socket, timeout_s: float = 10.0) -> None:
        """Publish probes on ``pub`` until the collector receives one (defeats ZeroMQ's slow-joiner loss)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            seen = len(self._messages)
        while time.monotonic() < deadline:
            pub.send_multipart([self.probe_topic.encode(), b"{}"])
            with self._cond:
                if self._cond.wait_for(
                    lambda: any(m.topic == self.probe_topic for m in self._messages[seen:]), timeout=0.05
                ):
                    return
        raise TimeoutError(f"zmq collector on {self.endpoint} received no probe within {timeout_s} s")

    def stop(self, timeout_s: float = 10.0) -> list[ZmqMessage]:
        """Tell the process to stop, wait for it, and return everything it received (probes excluded)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                if self._proc.poll() is None:
                    self._proc.stdin.write(b"stop\n")
                self._proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._kill()
        self._reader.join(timeout=timeout_s)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.messages()

    def _kill(self) -> str:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        return self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
