"""One call as a telephony platform sends it, in its own process, for ``emo-bench --server-calls``.

``python -m emostream.stream.tools.bench.twilio_sender URL WAV STREAM_ID [--speed X]`` streams an 8 kHz mono WAV
to ``emo-stream serve`` as Twilio Media Streams (mu-law, 20 ms ``media`` messages, paced at ``speed`` times real
time; 0 = as fast as the server reads), then ``stop``; ``--start-at T`` holds the first chunk until Unix time T, so
that the bench's N calls start together, as its in-process streams do. It prints ``{"t0": T}`` (Unix time the first
chunk left) and, when the server has closed the socket, ``{"closed": CODE}``: the bench dates each final event it
reads on the bus against ``t0`` plus the utterance's end.
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


async def send(url: str, samples: np.ndarray, stream_id: str, speed: float, start_at: float) -> int:
    sid = f"MZ{stream_id}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send_str(json.dumps({"event": "start", "streamSid": sid, "start": {
            "streamSid": sid, "callSid": f"CA{stream_id}", "tracks": ["inbound"],
            "customParameters": {"stream_id": stream_id},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}}}))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t0 = time.time()
        print(json.dumps({"t0": t0}), flush=True)
        for k in range(0, len(samples), CHUNK):
            payload = base64.b64encode(encode_mulaw(samples[k : k + CHUNK])).decode()
            await ws.send_str(json.dumps({"event": "media", "streamSid": sid, "media": {
                "track": "inbound", "chunk": str(k // CHUNK + 1), "timestamp": str(k * 1000 // RATE),
                "payload": payload}}))
            if speed:
                await asyncio.sleep(max(0.0, t0 + (k + CHUNK) / RATE / speed - time.time()))
        await ws.send_str(json.dumps({"event": "stop", "streamSid": sid, "stop": {"callSid": f"CA{stream_id}"}}))
        async for _ in ws:  # until the server closes, once the call's last event is out
            pass
        return ws.close_code or 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("wav")
    p.add_argument("stream_id")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--start-at", type=float, default=0.0, help="Unix time of the first chunk (default: at once)")
    a = p.parse_args()
    samples, rate = sf.read(a.wav, dtype="int16")
    if rate != RATE or samples.ndim != 1:
        raise SystemExit(f"twilio_sender: {a.wav} must be 8 kHz mono, got {rate} Hz, shape {samples.shape}")
    code = asyncio.run(send(a.url, samples, a.stream_id, a.speed, a.start_at))
    print(json.dumps({"closed": code}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
