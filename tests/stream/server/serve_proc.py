"""``emo-stream serve`` as a subprocess on a free port, and call clients (``call_client.py``) in their own processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.messaging import free_port

CLIENT = Path(__file__).with_name("call_client.py")
SSE_CLIENT = Path(__file__).with_name("sse_client.py")  # a dashboard's event stream, without a browser


class ServeProcess:
    def __init__(self, workdir: Path, config: str, tokens: str, *extra: str, zmq: bool = True) -> None:
        """``zmq=False`` leaves ZeroMQ out (cluster replicas on one machine cannot all bind its endpoint)."""
        self.port = free_port()
        self.zmq = f"tcp://127.0.0.1:{free_port()}"
        self.jsonl = workdir / "events.jsonl"
        self.log = workdir / "serve.log"
        cfg = workdir / "serve.yaml"
        cfg.write_text(config)
        env = dict(os.environ, EMO_STREAM_TOKENS=tokens)
        cmd = [sys.executable, "-m", "emostream.stream.cli", "serve", "--port", str(self.port), "--config", str(cfg),
               "--jsonl", str(self.jsonl), *(["--zmq", self.zmq] if zmq else []), "--no-stdout", "-v", *extra]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while "serving ws://" not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"emo-stream serve did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)

    def url(self, path: str, token: str | None = None, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}" + (f"?token={token}" if token else "")

    def get_json(self, path: str, token: str) -> dict:
        request = urllib.request.Request(self.url(path, scheme="http"), headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def status(self, path: str, token: str | None = None, origin: str | None = None) -> int:
        """The HTTP status of a GET that is refused (the token as the query parameter, as a browser sends it)."""
        request = urllib.request.Request(self.url(path, token, "http"), headers={"Origin": origin} if origin else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_has(self, text: str, timeout_s: float = 30) -> bool:
        """Whether ``text`` reaches the server's log within ``timeout_s``: a line logged in a Ray replica reaches the
        driver's log through Ray's log forwarding, some time after the event that caused it."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log_text():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    def events(self, stream_id: str, event_type: str = "emotion") -> list[dict]:
        if not self.jsonl.exists():
            return []
        rows = [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]
        return [e for e in rows if e["stream_id"] == stream_id and e["type"] == event_type]

    def terminate(self, timeout_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class ClientResult:
    lines: list[dict]

    @property
    def closed(self) -> dict:
        return next(x for x in self.lines if x["event"] in ("closed", "refused"))

    @property
    def replica(self) -> str | None:
        """The cluster ingress replica that took the call, ``replica@node``."""
        return next(x["replica"] for x in self.lines if x["event"] == "opened")

    def messages(self, event_type: str) -> list[dict]:
        return [x["data"] for x in self.lines if x["event"] == "message" and x["data"]["type"] == event_type]


def start_client(*args: str, script: Path = CLIENT) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish_client(proc: subprocess.Popen[str], timeout_s: float = 180) -> ClientResult:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err[-2000:]
    return ClientResult([json.loads(line) for line in out.splitlines() if line.strip()])


def run_client(*args: str, timeout_s: float = 180) -> ClientResult:
    return finish_client(start_client(*args), timeout_s)
