"""The calls of one ``emo-bench --server-calls`` step as a telephony platform sends them, from one process.

``python -m emostream.stream.tools.bench.twilio_sender URL WAV:STREAM_ID [WAV:STREAM_ID ...] [--speed X]
[--start-at T]`` streams each 8 kHz mono WAV to ``emo-stream serve`` as Twilio Media Streams (mu-law, 20 ms
``media`` messages, paced at ``speed`` times real time; 0 = as fast as the server reads), then ``stop``, all calls
at once. Every message is encoded before the first is sent, and one clock sends them all, so that the load
generator takes as little as it can of the CPU it shares with the server (a platform sends from machines of its
own). ``--start-at T`` holds the first chunks until Unix time T. Per call it prints ``{"sid": ..., "t0": T}``
(Unix time its first chunk left) and, when the server has closed that socket, ``{"sid": ..., "closed": CODE}``:
the bench dates each final event it reads on the bus against ``t0`` plus the utterance's end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time

import aiohttp
import numpy as np
import soundfile as sf

from emostream.stream.server.codecs import encode_mulaw

RATE, CHUNK = 8000, 160


def messages(samples: np.ndarray, stream_id: str) -> tuple[list[str], list[str]]:
    """The call's opening messages (``connected``, ``start``) and its ``media`` messages then ``stop``, as JSON."""
    sid = f"MZ{stream_id}"
    opening = [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
               json.dumps({"event": "start", "streamSid": sid, "start": {
                   "streamSid": sid, "callSid": f"CA{stream_id}", "tracks": ["inbound"],
                   "customParameters": {"stream_id": stream_id},
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}}})]
    media = [json.dumps({"event": "media", "streamSid": sid, "media": {
        "track": "inbound", "chunk": str(k // CHUNK + 1), "timestamp": str(k * 1000 // RATE),
        "payload": base64.b64encode(encode_mulaw(samples[k : k + CHUNK])).decode()}})
        for k in range(0, len(samples), CHUNK)]
    return opening, [*media, json.dumps({"event": "stop", "streamSid": sid, "stop": {"callSid": f"CA{stream_id}"}})]


async def send_all(url: str, calls: list[tuple[np.ndarray, str]], speed: float, start_at: float) -> None:
    """Every call's messages on one clock: at each 20 ms tick, the next message of every call still sending (one
    wake-up per tick, not one per call, so that the sender's share of the CPU does not grow with the calls)."""
    scripts = [(sid, *messages(samples, sid)) for samples, sid in calls]
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url, max_msg_size=0) for _ in scripts]
        try:
            for ws, (_, opening, _) in zip(sockets, scripts, strict=True):
                for m in opening:
                    await ws.send_str(m)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            t0 = time.time()
            for sid, _, _ in scripts:
                print(json.dumps({"sid": sid, "t0": t0}), flush=True)
            for i in range(max(len(rest) for _, _, rest in scripts)):
                for ws, (_, _, rest) in zip(sockets, scripts, strict=True):
                    if i < len(rest):
                        await ws.send_str(rest[i])
                if speed:
                    await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK / RATE / speed - time.time()))
            await asyncio.gather(*(closed(ws, sid) for ws, (sid, _, _) in zip(sockets, scripts, strict=True)))
        finally:
            for ws in sockets:
                await ws.close()


async def closed(ws: aiohttp.ClientWebSocketResponse, stream_id: str) -> None:
    async for _ in ws:  # until the server closes, once the call's last event is out
        pass
    print(json.dumps({"sid": stream_id, "closed": ws.close_code or 0}), flush=True)


def read(wav: str) -> np.ndarray:
    samples, rate = sf.read(wav, dtype="int16")
    if rate != RATE or samples.ndim != 1:
        raise SystemExit(f"twilio_sender: {wav} must be 8 kHz mono, got {rate} Hz, shape {samples.shape}")
    return samples


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("calls", nargs="+", metavar="WAV:STREAM_ID")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--start-at", type=float, default=0.0, help="Unix time of the first chunks (default: at once)")
    a = p.parse_args()
    calls = [(read(wav), sid) for wav, sid in (c.rsplit(":", 1) for c in a.calls)]
    asyncio.run(send_all(a.url, calls, a.speed, a.start_at))
    return 0


if __name__ == "__main__":
    sys.exit(main())
