"""A real microphone with no sound card: a PulseAudio daemon whose source reads a FIFO we write PCM into.

PortAudio sees the daemon through ALSA's ``pulse`` device (apt ``libasound2-plugins``). PortAudio lists devices
once, when it initialises (on ``import sounddevice``), so a process that should see ``pulse`` must start after
the daemon: run capture in a subprocess with :attr:`PulseMic.env`, e.g. ``python -m tests.support.pulse``.

Usage::

    with PulseMic(tmp_path) as mic:
        proc = subprocess.Popen([sys.executable, "-m", "tests.support.pulse", "capture", out], env=mic.env, ...)
        mic.play(pcm_int16)  # spoken at real-time pace; silence is fed before and after

Command line (in an environment from :attr:`PulseMic.env`)::

    python -m tests.support.pulse list                  # prints emo-stream's device table
    python -m tests.support.pulse capture OUT.npz       # prints "ready" at the first frame; SIGTERM stops
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import pytest

from tests import REPO_ROOT

SOURCE_NAME = "virtmic"
ALSA_PULSE_PLUGIN = "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"
APT_HINT = "apt-get install pulseaudio libasound2-plugins"


def missing() -> str:
    """Why a PulseAudio microphone cannot be made here ("" when it can)."""
    for tool in ("pulseaudio", "pactl"):
        if not shutil.which(tool):
            return f"`{tool}` is not installed ({APT_HINT})"
    if not glob.glob(ALSA_PULSE_PLUGIN):
        return f"ALSA's pulse plugin is not installed, so PortAudio cannot see PulseAudio ({APT_HINT})"
    return ""


def require() -> None:
    """``pytest.skip`` with the reason when PulseAudio or the ALSA plugin is missing."""
    if reason := missing():
        pytest.skip(reason)


@dataclass
class _Play:
    """PCM queued for the microphone; ``started`` is when its first byte was written."""

    data: bytes
    pos: int = 0
    started: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout_s: float | None = None) -> float:
        if not self.done.wait(timeout_s):
            raise TimeoutError("the microphone feeder did not finish playing")
        assert self.started is not None
        return self.started


class PulseMic:
    """A private PulseAudio daemon (own runtime dir, no autospawn, anonymous auth) with a FIFO source.

    ``env`` is what a client process needs to reach this daemon, and only this one; sounddevice then
    records the FIFO's PCM from the device named ``pulse``, sample for sample at ``rate``.
    """

    def __init__(self, root: str | Path, rate: int = 16000, channels: int = 1) -> None:
        self.root = Path(root)
        self.rate, self.channels = rate, channels
        self.runtime = self.root / "runtime"
        self.fifo = self.root / "mic.fifo"
        self.log = self.root / "pulseaudio.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._feeder: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._plays: deque[_Play] = deque()
        client_conf = self.root / "client.conf"
        socket = self.runtime / "pulse" / "native"
        self.env: dict[str, str] = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.root / "config"),  # the daemon's cookie and state stay in root
            "PULSE_SERVER": f"unix:{socket}",
            "PULSE_CLIENTCONFIG": str(client_conf),  # autospawn = no: never start a second, default daemon
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        }

    def start(self, timeout_s: float = 15.0) -> PulseMic:
        require()
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / "client.conf").write_text("autospawn = no\n")
        self.fifo.unlink(missing_ok=True)  # module-pipe-source makes the FIFO itself and refuses an existing one
        source = (
            f"module-pipe-source source_name={SOURCE_NAME} file={self.fifo} format=s16le "
            f"rate={self.rate} channels={self.channels}"
        )
        cmd = [
            shutil.which("pulseaudio") or "pulseaudio",
            "--daemonize=no", "--exit-idle-time=-1", "-n", "--disallow-exit", f"--log-target=file:{self.log}",
            "--load=module-native-protocol-unix auth-anonymous=1", f"--load={source}",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None or "Failed to load module" in self._log_tail():
                break
            r = self.pactl("list", "short", "sources", check=False)
            if r.returncode == 0 and SOURCE_NAME in r.stdout:
                self.pactl("set-default-source", SOURCE_NAME)
                self._stopping.clear()
                self._feeder = threading.Thread(target=self._feed, name="pulse-mic-feeder", daemon=True)
                self._feeder.start()
                return self
            time.sleep(0.1)
        log = self._log_tail()
        self.stop()
        raise RuntimeError(f"PulseAudio did not come up with source {SOURCE_NAME!r}; log tail:\n{log}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10,
                              check=check)

    def play(self, pcm: np.ndarray, wait: bool = True) -> _Play:
        """Queues int16 PCM ((n,) or (n, channels)) to be "spoken" into the microphone after what is queued.

        With ``wait`` it returns once the last sample was written; ``started`` is the ``time.monotonic()``
        at which its first sample went into the FIFO.
        """
        item = _Play(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        with self._lock:
            self._plays.append(item)
        if wait:
            item.wait()
        return item

    def _feed(self, chunk_ms: int = 10) -> None:
        """Feeds the FIFO at real-time pace for as long as the daemon runs: queued plays, else silence.

        module-pipe-source produces nothing while nobody writes, so a microphone (a steady stream, silent
        or not) is simulated by always writing. Like a microphone, it never bursts: while nobody records,
        the daemon stops reading and the FIFO fills; then silence is dropped and plays wait (a write that
        would block is skipped, and a clock that fell behind is re-anchored instead of caught up).
        """
        step = self.rate * self.channels * 2 * chunk_ms // 1000  # well under PIPE_BUF: writes are all or nothing
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # the daemon holds the FIFO open: no ENXIO
        try:
            t0, i = time.monotonic(), 0
            while not self._stopping.is_set():
                due = t0 + i * chunk_ms / 1000
                now = time.monotonic()
                if now > due + 0.1:
                    t0, i, due = now, 0, now
                time.sleep(max(0.0, due - now))
                i += 1
                with self._lock:  # plan the chunk; commit it only once written
                    plan: list[tuple[_Play, int]] = []
                    chunk = b""
                    for play in self._plays:
                        take = play.data[play.pos : play.pos + step - len(chunk)]
                        plan.append((play, len(take)))
                        chunk += take
                        if len(chunk) == step:
                            break
                chunk += bytes(step - len(chunk))
                try:
                    os.write(fd, chunk)
                except BlockingIOError:
                    continue  # nobody is recording: this moment of "sound" is lost, as with a real microphone
                written = time.monotonic()
                with self._lock:
                    for play, n in plan:
                        if play.started is None:
                            play.started = written
                        play.pos += n
                        if play.pos >= len(play.data):
                            self._plays.popleft()
                            play.done.set()
        except OSError:
            pass  # the daemon went away
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stopping.set()
        if self._feeder is not None:
            self._feeder.join(timeout=5)
            self._feeder = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> PulseMic:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------- client side


async def _capture(out: Path, device: str, frame_samples: int, channels: int) -> None:
    from emostream.stream.messages import EndOfStream
    from emostream.stream.sources.microphone import CaptureStats, capture

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats = CaptureStats()
    chunks: list[list[np.ndarray]] = [[] for _ in range(channels)]
    index: list[int] = []
    wall: list[float] = []
    async for item in capture(device, "mic", frame_samples, stop, stats, channels=channels):
        if isinstance(item, EndOfStream):
            np.savez(out, samples=np.stack([np.concatenate(c or [np.zeros(0, np.int16)]) for c in chunks]),
                     index=np.asarray(index), wall=np.asarray(wall), eos_frames=item.frames, peak=item.peak,
                     error=item.error, overruns=stats.overruns, dropped=stats.dropped_frames, frames=stats.frames)
            return
        chunks[item.channel].append(item.samples)
        if item.channel == 0:
            if not index:
                print("ready", flush=True)
            index.append(item.index)
            wall.append(item.wall)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.support.pulse")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    c = sub.add_parser("capture")
    c.add_argument("out", type=Path)
    c.add_argument("--device", default="pulse")
    c.add_argument("--frame-samples", type=int, default=480)
    c.add_argument("--channels", type=int, default=1)
    a = p.parse_args(argv)
    if a.cmd == "list":
        from emostream.stream.sources.microphone import list_devices

        print(list_devices())
        return 0
    asyncio.run(_capture(a.out, a.device, a.frame_samples, a.channels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
