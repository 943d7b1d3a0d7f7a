"""A telephony platform or robot in its own process: streams a recording to ``emo-stream serve`` over a real
WebSocket (the ``websockets`` library) and reports what happened as JSON lines on stdout.

Usage::

    python call_client.py twilio ws://HOST:PORT/twilio?token=T --audio F [--turns J] [--seconds S] [--speed X]
        [--stream-id ID] [--vanish-at S]
    python call_client.py native ws://HOST:PORT/v1/stream --token T --audio F [--seconds S] [--speed X]
        [--stream-id ID] [--events] [--channel-names a,b]

Twilio: the audio is resampled to 8 kHz, mu-law encoded and sent as ``media`` messages of 20 ms; with ``--turns``
(a dialogue's ground-truth JSON) the customer's turns go on the inbound track and the agent's on the outbound one,
as on a real call. Native: 16 kHz pcm_s16le frames of 100 ms, then ``{"type": "stop"}``. ``--speed`` is how many
times real time (0: as fast as the server takes it); ``--vanish-at`` ends the process without a close frame
after that many seconds of audio, like a dropped call.

Lines printed: ``{"event": "opened", "replica": ...}`` once connected (the cluster ingress replica that took the
call, ``replica@node``; None from the single-process server), ``{"event": "message", "data": ...}`` per text
message received, ``{"event": "refused", "status": N}`` when the handshake is refused, ``{"event": "closed",
"code": N, "reason": "..."}`` at the end.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from emostream.stream.server.codecs import encode_mulaw


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def load(path: Path, rate: int, seconds: float, mono: bool = True) -> np.ndarray:
    """int16 samples at ``rate``: ``(n,)`` mixed to mono, else ``(n, channels)``."""
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    if mono:
        audio = audio.mean(axis=1)
    if seconds:
        audio = audio[: int(seconds * sr)]
    if sr != rate:
        audio = soxr.resample(audio, sr, rate)
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def tracks(audio: np.ndarray, rate: int, turns: Path | None) -> dict[str, np.ndarray]:
    if turns is None:
        return {"inbound": audio}
    inbound, outbound = np.zeros_like(audio), np.zeros_like(audio)
    for t in json.loads(turns.read_text())["turns"]:
        a, b = max(0, int((t["start_s"] - 0.3) * rate)), int((t["end_s"] + 0.3) * rate)
        target = inbound if t["speaker"] == "customer" else outbound
        target[a:b] = audio[a:b]
    return {"inbound": inbound, "outbound": outbound}


def reader(ws, done: threading.Event) -> None:
    try:
        for message in ws:
            if isinstance(message, str):
                emit({"event": "message", "data": json.loads(message)})
    except ConnectionClosed:
        pass
    finally:
        done.set()


def pace(t0: float, audio_s: float, speed: float) -> None:
    if speed:
        time.sleep(max(0.0, t0 + audio_s / speed - time.monotonic()))


def twilio(a: argparse.Namespace, ws) -> None:
    rate, chunk = 8000, 160
    by_track = tracks(load(a.audio, rate, a.seconds), rate, a.turns)
    sid = a.stream_id
    ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": f"MZ{sid}", "start": {
        "accountSid": "ACtest", "streamSid": f"MZ{sid}", "callSid": f"CA{sid}", "tracks": list(by_track),
        "customParameters": {"stream_id": sid},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    n, seq, t0 = len(next(iter(by_track.values()))), 2, time.monotonic()
    for k in range(0, n, chunk):
        if a.vanish_at and k / rate >= a.vanish_at:
            os._exit(0)  # no close frame, no stop: the TCP connection just ends
        for track, audio in by_track.items():
            payload = base64.b64encode(encode_mulaw(audio[k : k + chunk])).decode()
            ws.send(json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": f"MZ{sid}", "media": {
                "track": track, "chunk": str(k // chunk + 1), "timestamp": str(k * 1000 // rate),
                "payload": payload}}))
            seq += 1
        pace(t0, (k + chunk) / rate, a.speed)
    ws.send(json.dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": f"MZ{sid}",
                        "mark": {"name": "end"}}))
    ws.send(json.dumps({"event": "stop", "sequenceNumber": str(seq + 1), "streamSid": f"MZ{sid}",
                        "stop": {"accountSid": "ACtest", "callSid": f"CA{sid}"}}))


def native(a: argparse.Namespace, ws) -> None:
    rate, block = 16000, 1600
    names = a.channel_names.split(",") if a.channel_names else []
    audio = load(a.audio, rate, a.seconds, mono=not names)
    start = {"type": "start", "stream_id": a.stream_id, "sample_rate": rate, "encoding": "pcm_s16le",
             "channels": max(1, len(names)), "events": a.events}
    ws.send(json.dumps(start | ({"channel_names": names} if names else {})))
    t0 = time.monotonic()
    for k in range(0, len(audio), block):
        if a.vanish_at and k / rate >= a.vanish_at:
            os._exit(0)
        ws.send(audio[k : k + block].astype("<i2").tobytes())
        pace(t0, (k + block) / rate, a.speed)
    ws.send(json.dumps({"type": "stop"}))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("protocol", choices=["twilio", "native"])
    p.add_argument("url")
    p.add_argument("--audio", type=Path, required=True)
    p.add_argument("--turns", type=Path)
    p.add_argument("--token")
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--speed", type=float, default=0.0)
    p.add_argument("--stream-id", default="call1")
    p.add_argument("--vanish-at", type=float, default=0.0)
    p.add_argument("--events", action="store_true")
    p.add_argument("--channel-names", help="native: send the file's channels as they are, named so (a,b)")
    a = p.parse_args()
    headers = {"Authorization": f"Bearer {a.token}"} if a.token else {}
    try:
        ws = connect(a.url, additional_headers=headers, compression=None, open_timeout=30, close_timeout=120)
    except InvalidStatus as e:
        emit({"event": "refused", "status": e.response.status_code})
        return 0
    replica = ws.response.headers.get("X-Emo-Stream-Replica") if ws.response else None
    emit({"event": "opened", "replica": replica})  # which cluster replica took the call (None: one process)
    done = threading.Event()
    threading.Thread(target=reader, args=(ws, done), daemon=True).start()
    with contextlib.suppress(ConnectionClosed):  # the server closed first (an error, a shutdown)
        (twilio if a.protocol == "twilio" else native)(a, ws)
    done.wait(300)  # the server closes once the stream's last event is out
    emit({"event": "closed", "code": ws.close_code, "reason": ws.close_reason})
    ws.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
