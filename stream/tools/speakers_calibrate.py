"""Calibrates ``speakers.threshold``: cosine similarities of same- vs different-speaker utterance pairs.

Utterances are cut exactly as the stream cuts them (webrtcvad spans with pre- and post-roll) from RAVDESS actors
1-20 (21-24 stay held out for tests) and from espeak-ng voices. Prints the equal error rate and its threshold per
corpus, then replays random two-speaker RAVDESS dialogues through :class:`SpeakerTracker` at a few thresholds,
because the tracker compares an utterance with a centroid, not with one other utterance.

    python -m emostream.stream.tools.speakers_calibrate [--data ../shared/data] [--dialogues 200]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from emostream.stream.stages.speakers import SAMPLE_RATE, SpeakerConfig, SpeakerEncoder, SpeakerTracker
from emostream.stream.stages.vad import VadConfig, cut_utterance, speech_spans

ACTORS = range(1, 21)
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+f3", "en-us+m7", "en-gb+f4")
SENTENCES = (
    "I can't believe you did that, this is terrible.",
    "Thank you so much, that is wonderful news.",
    "Please send the invoice to the billing department by Friday.",
    "I am really scared that something bad happened to her.",
    "Could you tell me when the next train leaves?",
    "We have been waiting for over an hour already.",
)


def utterances(audio: np.ndarray, vad: VadConfig) -> list[np.ndarray]:
    return [cut_utterance(audio, s, vad) for s in speech_spans(audio, vad)]


def ravdess(root: Path, vad: VadConfig) -> list[tuple[str, np.ndarray]]:
    out = []
    for actor in ACTORS:
        for f in sorted((root / f"Actor_{actor:02d}").glob("*.flac")):
            x, sr = sf.read(f, dtype="float32")
            assert sr == SAMPLE_RATE, f
            out += [(f"ravdess:{actor:02d}", u) for u in utterances(x, vad)]
    return out


def espeak(vad: VadConfig) -> list[tuple[str, np.ndarray]]:
    binary = shutil.which("espeak-ng")
    if binary is None:
        print("espeak-ng not installed: RAVDESS only")
        return []
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "tts.wav"
        for voice, text in itertools.product(VOICES, SENTENCES):
            subprocess.run([binary, "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
            x, sr = sf.read(wav, dtype="float32")
            x = np.pad(soxr.resample(x, sr, SAMPLE_RATE), (8000, 8000))  # silence around, as in a call
            out += [(f"espeak:{voice}", u) for u in utterances(x.astype(np.float32), vad)]
    return out


def eer(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """(equal error rate, threshold): where P(same < t) meets P(diff >= t)."""
    ts = np.unique(np.concatenate([same, diff]))
    frr = np.searchsorted(np.sort(same), ts, side="left") / len(same)
    far = 1.0 - np.searchsorted(np.sort(diff), ts, side="left") / len(diff)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(ts[i])


def pair_report(name: str, labels: list[str], emb: np.ndarray, keep: np.ndarray) -> float:
    idx = np.flatnonzero(keep)
    sims = emb[idx] @ emb[idx].T
    iu = np.triu_indices(len(idx), 1)
    lab = np.array(labels)[idx]
    same_mask = lab[iu[0]] == lab[iu[1]]
    same, diff = sims[iu][same_mask], sims[iu][~same_mask]
    rate, t = eer(same, diff)
    print(f"{name}: {len(set(lab))} speakers, {len(idx)} utterances, {len(same)} same / {len(diff)} different pairs; "
          f"same mean {same.mean():.3f}, different mean {diff.mean():.3f}; EER {rate:.2%} at threshold {t:.3f}")
    return t


def _agree(got: list[str], truth: list[str]) -> int:
    """Turns labelled consistently with the truth under the best renaming of the tracker's labels."""
    best = {r: max(sum(g == s and t == r for g, t in zip(got, truth, strict=True)) for s in set(got)) for r in truth}
    return sum(best.values())


def dialogues(labels: list[str], emb: np.ndarray, durs: np.ndarray, n: int, thresholds: list[float]) -> None:
    """Replays random 8-turn RAVDESS dialogues: A/B alternations (same or mixed sex) and one actor alone."""
    rng = np.random.default_rng(0)
    by: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        if lab.startswith("ravdess:"):
            by.setdefault(int(lab.split(":")[1]), []).append(i)
    actors = sorted(by)  # odd numbers are male, even female
    plans = []
    for _ in range(n):
        a, b = (int(v) for v in rng.choice(actors, 2, replace=False))
        plans.append(("mixed sex" if (a - b) % 2 else "same sex", [a, b] * 4))
        plans.append(("one speaker", [a] * 8))
    picks = [[int(rng.choice(by[x])) for x in actors_] for _, actors_ in plans]
    for t in thresholds:
        stats: dict[str, list[tuple[bool, int]]] = {}
        for (kind, who), turns in zip(plans, picks, strict=True):
            tr = SpeakerTracker(SpeakerConfig(threshold=t))
            got = [tr.assign_embedding(emb[i], float(durs[i])).speaker for i in turns]
            ok = len(set(got)) == len(set(who)) and _agree(got, [str(w) for w in who]) >= 7
            stats.setdefault(kind, []).append((ok, len(tr.speakers)))
        parts = [f"{k} {np.mean([o for o, _ in v]):.0%} ok ({len(v)}, {np.mean([c for _, c in v]):.2f} speakers)"
                 for k, v in sorted(stats.items())]
        print(f"tracker @ {t:.2f}: " + "; ".join(parts))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    ap.add_argument("--dialogues", type=int, default=200)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # one LSTM at a time is faster than two threads fighting over shared cores
    vad = VadConfig()
    clips = ravdess(args.data / "ravdess", vad) + espeak(vad)
    enc = SpeakerEncoder()
    labels = [lab for lab, _ in clips]
    emb = np.stack([enc.embed(u) for _, u in clips]).astype(np.float64)
    durs = np.array([len(u) / SAMPLE_RATE for _, u in clips])
    print(f"utterance length: median {np.median(durs):.2f} s, min {durs.min():.2f} s")
    rav = np.array([lab.startswith("ravdess") for lab in labels])
    pair_report("RAVDESS actors 1-20", labels, emb, rav)
    if (~rav).any():
        pair_report("espeak-ng voices", labels, emb, ~rav)
    t = pair_report("all", labels, emb, np.ones(len(labels), bool))
    dialogues(labels, emb, durs, args.dialogues, sorted({round(t, 2), 0.50, 0.55, 0.60, 0.65, 0.70}))


if __name__ == "__main__":
    main()
