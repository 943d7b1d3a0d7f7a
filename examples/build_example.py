#!/usr/bin/env python3
"""Regenerate the bundled example dialogue ``call_center.flac`` and its ground truth ``call_center.json``.

Six turns of a customer-service call, synthesised with espeak-ng (customer: voice ``en-us``, agent: ``en-us+f3``),
resampled to 16 kHz with sox, each turn trimmed of leading/trailing silence (10 ms frames, -35 dB relative to the
turn's loudest frame), laid out with fixed pauses, and written as mono 16-bit FLAC. The emotion labels are the ones
intended by the words: espeak-ng speaks flatly.

Needs the ``espeak-ng`` and ``sox`` command-line tools, plus numpy and soundfile.
Usage: ``python examples/build_example.py [--out-dir DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
SPEED_WPM = 160
LEAD_S = 0.5
TAIL_S = 0.5
PAUSE_S = 1.0
FRAME_MS = 10
THRESHOLD_DB = -35.0
VOICES = {"customer": "en-us", "agent": "en-us+f3"}

# (speaker, text, intended emotion). Text written for this project.
SCRIPT: list[tuple[str, str, str]] = [
    ("customer", "This is the third time I have called and my internet is still down, I am furious!", "anger"),
    ("agent", "I understand, let me check your account and the line from here.", "neutral"),
    ("customer", "You people always say that and nothing ever gets fixed!", "anger"),
    ("agent", "I can see a fault on your line, a technician will fix it tomorrow morning.", "neutral"),
    ("customer", "Oh thank you so much, that is wonderful news, what a relief!", "joy"),
    ("agent", "You are very welcome, I am glad we could help, have a lovely day!", "joy"),
]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"error: `{name}` not found (apt-get install espeak-ng sox)")
    return path


def espeak_version() -> str:
    """First line of ``espeak-ng --version``, e.g. ``eSpeak NG text-to-speech: 1.51 ...``."""
    out = subprocess.run([_tool("espeak-ng"), "--version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].split("  Data at:")[0].strip()


def synthesize(text: str, voice: str, workdir: Path) -> np.ndarray:
    """espeak-ng -> WAV, sox -> 16 kHz mono, returned as float32 samples."""
    raw, wav16 = workdir / "raw.wav", workdir / "16k.wav"
    subprocess.run([_tool("espeak-ng"), "-v", voice, "-s", str(SPEED_WPM), "-w", str(raw), text], check=True)
    # -D: no dither, and float output, so the result is bit-for-bit repeatable
    cmd = [_tool("sox"), "-V1", "-D", str(raw), "-e", "floating-point", "-r", str(SAMPLE_RATE), "-c", "1", str(wav16)]
    subprocess.run(cmd, check=True)
    x, sr = sf.read(wav16, dtype="float32")
    assert sr == SAMPLE_RATE
    return x


def trim_silence(x: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Keep from the first to the last 10 ms frame whose RMS is within -35 dB of the loudest frame's RMS."""
    hop = sr * FRAME_MS // 1000
    n = len(x) // hop
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1))
    voiced = np.flatnonzero(rms >= rms.max() * 10 ** (THRESHOLD_DB / 20))
    return x[voiced[0] * hop : (voiced[-1] + 1) * hop]


def build(out_dir: Path) -> dict:
    """Write ``call_center.flac`` and ``call_center.json`` into ``out_dir``; return the ground truth."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pieces: list[np.ndarray] = [np.zeros(round(LEAD_S * SAMPLE_RATE), dtype=np.float32)]
    cursor = len(pieces[0])
    turns = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (speaker, text, emotion) in enumerate(SCRIPT):
            clip = trim_silence(synthesize(text, VOICES[speaker], Path(tmp)))
            turns.append(
                {
                    "start_s": cursor / SAMPLE_RATE,
                    "end_s": (cursor + len(clip)) / SAMPLE_RATE,
                    "speaker": speaker,
                    "channel": 0,
                    "text": text,
                    "emotion": emotion,
                    "source": f"espeak-ng:{VOICES[speaker]}",
                }
            )
            gap = round((PAUSE_S if i < len(SCRIPT) - 1 else TAIL_S) * SAMPLE_RATE)
            pieces += [clip, np.zeros(gap, dtype=np.float32)]
            cursor += len(clip) + gap
    audio = np.concatenate(pieces)
    sf.write(out_dir / "call_center.flac", np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    truth = {
        "audio": "call_center.flac",
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "duration_s": len(audio) / SAMPLE_RATE,
        "emotion_note": "emotion is the one intended by the words; espeak-ng speaks flatly",
        "generator": {
            "tool": espeak_version(),
            "command": f"espeak-ng -v VOICE -s {SPEED_WPM} -w out.wav TEXT; "
            f"sox -D out.wav -e floating-point -r {SAMPLE_RATE} -c 1 16k.wav",
            "voices": VOICES,
            "trim": f"{FRAME_MS} ms frames, keep first..last frame with RMS >= {THRESHOLD_DB} dB re. loudest frame",
            "pause_s": PAUSE_S,
            "lead_s": LEAD_S,
            "tail_s": TAIL_S,
        },
        "turns": turns,
    }
    (out_dir / "call_center.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    truth = build(ap.parse_args().out_dir)
    print(f"{truth['duration_s']:.2f} s, {len(truth['turns'])} turns")


if __name__ == "__main__":
    main()
