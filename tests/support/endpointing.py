"""Measures the endpointer on labelled dialogues: missed and extra utterances, boundary errors.

    python -m tests.support.endpointing            # prints a markdown table (docs/endpointing.md has one)

Dialogues: the bundled example, RAVDESS and mixed RAVDESS/espeak-ng dialogues (when ../shared/data exists),
and the same with bursts of noise (white noise and clicks, 0.2 s, in the middle of every pause), which is where
a second opinion from Silero VAD should pay off. Segments run through the real stages (WebRTC segmenter,
optional Silero check).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from emostream.stream.stages.confirmation import SileroConfirmation
from emostream.stream.stages.vad import SAMPLE_RATE, VadConfig, segment_all
from tests.support import dialogues as dlg


@dataclass
class Score:
    turns: int = 0
    found: int = 0
    missed: int = 0
    extra: int = 0
    errors: list[float] | None = None


def with_noise_bursts(audio: np.ndarray, turns: list[dlg.Turn], seed: int = 0) -> np.ndarray:
    """Adds a 0.2 s burst of noise (white, or clicks) in the middle of every pause between turns."""
    rng = np.random.default_rng(seed)
    out = audio.copy()
    for i, (a, b) in enumerate(itertools.pairwise(turns)):
        mid = int((a.end_s + b.start_s) / 2 * SAMPLE_RATE)
        n = int(0.2 * SAMPLE_RATE)
        burst = rng.normal(0, 0.05, n) if i % 2 == 0 else (rng.random(n) < 0.01) * rng.uniform(-0.6, 0.6, n)
        out[mid - n // 2 : mid - n // 2 + n] += burst.astype(np.float32)
    return np.clip(out, -1, 1)


def score(audio: np.ndarray, turns: list[dlg.Turn], cfg: VadConfig, silero: SileroConfirmation | None) -> Score:
    segs = [(s.start / SAMPLE_RATE, s.end / SAMPLE_RATE, s.audio) for s in segment_all(audio, cfg)]
    if silero is not None:
        segs = [s for s in segs if silero.speech_ms(s[2]) >= cfg.silero_min_speech_ms]
    result = Score(turns=len(turns), errors=[])
    used = set()
    for t in turns:
        overlaps = [(min(t.end_s, e) - max(t.start_s, s), i) for i, (s, e, _) in enumerate(segs)]
        best, i = max(overlaps, default=(0.0, -1))
        if best <= 0:
            result.missed += 1
            continue
        used.add(i)
        result.found += 1
        result.errors += [abs(segs[i][0] - t.start_s), abs(segs[i][1] - t.end_s)]
    result.extra = len(segs) - len(used)
    return result


def dialogues(tmp: Path) -> dict[str, tuple[np.ndarray, list[dlg.Turn]]]:
    built = [("example", dlg.example_dialogue())]
    try:
        built += [("ravdess", dlg.ravdess_dialogue(tmp)), ("mixed", dlg.mixed_dialogue(tmp))]
    except Exception as e:  # pytest's Skipped when the data is absent
        print(f"(RAVDESS dialogues left out: {e})")
    out = {}
    for name, d in built:
        audio, _ = sf.read(d.path, dtype="float32")
        out[name] = (audio, d.turns)
        out[f"{name}+noise"] = (with_noise_bursts(audio, d.turns), d.turns)
    return out


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    data = dialogues(Path(tempfile.mkdtemp()))
    print("| config | dialogues | turns | missed | extra | boundary error median / p95 / max (s) |")
    print("|---|---|---:|---:|---:|---|")
    for agg in (1, 2, 3):
        for confirm in (False, True):
            cfg = VadConfig(aggressiveness=agg, confirm_with_silero=confirm)
            silero = SileroConfirmation(cfg) if confirm else None
            for kind in ("clean", "noise bursts"):
                scores = [score(a, t, cfg, silero) for name, (a, t) in data.items() if ("+noise" in name) == (
                    kind == "noise bursts")]
                errs = np.array([e for s in scores for e in (s.errors or [])])
                name = f"aggressiveness {agg}" + (" + Silero" if confirm else "")
                print(f"| {name} | {kind} | {sum(s.turns for s in scores)} | {sum(s.missed for s in scores)} | "
                      f"{sum(s.extra for s in scores)} | {np.median(errs):.2f} / {np.percentile(errs, 95):.2f} / "
                      f"{errs.max():.2f} |")


if __name__ == "__main__":
    main()
