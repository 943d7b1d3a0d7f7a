"""Which acoustic front end carries emotion across corpora: linear probes, leave one corpus out.

For each audio corpus of a config left out in turn, a logistic regression (class-balanced) is trained on utterance
vectors of the other corpora's training speakers, its regularisation chosen on their dev speakers (the dev
column: what a front end is chosen by), and scored on the left-out corpus whole (UA with the argmax restricted to
its classes, anger recall and precision, binary arousal). Utterance vectors: mean and standard deviation of the
Whisper encoder states, the eGeMAPS functionals, or both, standardised per speaker ("spk", what the stream's
speaker normalisation approximates) or over the training data ("none"). It reads the frames the config's
features cache holds, so it needs a config with ``functionals: egemaps`` (both parts are then in every frame).

    python -m emostream.training.probe_front_ends --config configs/multicorpus.yaml --out docs/results/front_ends.json

``--blocks`` asks instead which of the encoder's blocks to read: every clip goes once through all of them
(models/whisper_layers.py), and the states after each block (0: the convolutions only; the last: the encoder's
output) are pooled and probed beside the functionals, standardised per speaker.

    python -m emostream.training.probe_front_ends --config configs/multicorpus.yaml --blocks \
        --out docs/results/front_ends_blocks.json

``--set KEY=VALUE`` probes a variant of the config's front end, e.g. Whisper ``base``'s blocks
(``--set features.whisper=base``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emostream.models.features import FeatureSpec
from emostream.models.labels import LABELS
from emostream.models.whisper_layers import WhisperEncoderLayers
from emostream.models.whisper_states import HOP, WHISPER_MODELS, padded_mel
from emostream.stream.stages.vad import VadConfig
from emostream.training.cache import audio_frames, heard_clip
from emostream.training.config import load_config
from emostream.training.corpus_scores import corpus_scores, headline
from emostream.training.data.registry import CORPORA
from emostream.training.metrics import scores
from emostream.training.options import add_data_options, add_override_option
from emostream.training.paths import default_cache_dir, default_data_dir

log = logging.getLogger(__name__)
FRONT_ENDS = ("whisper", "egemaps", "whisper+egemaps")
C_GRID = (0.01, 0.1)


def vectors(frames: list, whisper_dim: int, front_end: str) -> np.ndarray:
    parts = []
    for f in frames:
        f = f.numpy().astype(np.float64)
        w, e = f[:, :whisper_dim], f[0, whisper_dim:]
        row = {"whisper": [w.mean(0), w.std(0)], "egemaps": [e],
               "whisper+egemaps": [w.mean(0), w.std(0), e]}[front_end]
        parts.append(np.concatenate(row))
    return np.stack(parts)


def standardise(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = x.copy()
    for g in np.unique(groups):
        m = groups == g
        out[m] = (x[m] - x[m].mean(0)) / (x[m].std(0) + 1e-6)
    return out


def block_vectors(paths: list[Path], spec: FeatureSpec, vad: VadConfig) -> np.ndarray:
    """``(clips, blocks + 1, 2 * dim)``: mean and standard deviation of each block's states over the clip's frames,
    the clip cut and encoded as ``audio_frames`` does (VAD cut, padded to the window, frames past the cap dropped)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    model = WHISPER_MODELS[spec.whisper]
    encoder = WhisperEncoderLayers(model.path() / "model.bin", model.blocks)
    mel = FeatureExtractor(feature_size=encoder.n_mels)
    out = np.zeros((len(paths), model.blocks + 1, 2 * model.dim), dtype=np.float32)
    for i, path in enumerate(tqdm(paths, desc="encoder blocks", unit="clip", mininterval=2.0)):
        cut = heard_clip(path, vad)[0][: min(spec.max_frames, 1500) * 2 * HOP]  # one window: every clip here fits
        frames = max(1, -(-len(cut) // (2 * HOP)))
        states = encoder.blocks(torch.from_numpy(padded_mel(mel, cut, spec.whisper_window_s))[None])
        for b, s in enumerate(states):
            s = s[0, :frames]
            out[i, b] = torch.cat([s.mean(0), s.std(0, unbiased=False)]).numpy()
    return out


def probe(x: np.ndarray, y: np.ndarray, corpus: np.ndarray, split: np.ndarray, held: str) -> dict:
    from sklearn.linear_model import LogisticRegression

    train, dev = (corpus != held) & (split == "train"), (corpus != held) & (split == "dev")
    best = None
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x[train], y[train])
        log_p = np.full((len(y), len(LABELS)), -30.0)
        log_p[:, clf.classes_] = clf.predict_log_proba(x)
        devs = []
        for name in np.unique(corpus[dev]):
            m = dev & (corpus == name)
            inside = np.array([label in CORPORA[name].classes for label in LABELS])
            devs.append(scores(y[m], np.where(inside, log_p[m], -np.inf).argmax(1), LABELS)["unweighted_recall"])
        if best is None or np.mean(devs) > best[0]:
            best = (float(np.mean(devs)), c, log_p)
    dev_ua, c, log_p = best
    held_out = corpus == held
    return {"dev": dev_ua, "C": c,
            **headline(corpus_scores(log_p[held_out], y[held_out], LABELS, CORPORA[held].classes))}


def blocks_table(rows: list[dict], held_out: list[str]) -> str:
    """One row per block: dev UA of each fold and their mean (what a block is chosen by), then each left-out
    corpus's UA, and anger and arousal with the last corpus left out."""
    last = held_out[-1]
    lines = ["| block | dev UA, " + " / ".join(held_out) + " left out (mean) | UA of the left-out corpus, "
             + " / ".join(held_out) + f" | {last} left out: anger recall / precision, arousal |", "|---|---|---|---|"]
    for block in sorted({r["block"] for r in rows}):
        by = {r["left_out"]: r for r in rows if r["block"] == block}
        dev = [by[h]["dev"] for h in held_out]
        left_out = " / ".join(f"{by[h]['ua']:.3f}" for h in held_out)
        lines.append(f"| {block} | {' / '.join(f'{d:.3f}' for d in dev)} ({np.mean(dev):.3f}) | "
                     f"{left_out} | {by[last]['anger_recall']:.3f} / "
                     f"{by[last]['anger_precision']:.3f}, {by[last]['arousal']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.probe_front_ends", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("runs/front_ends.json"))
    p.add_argument("--blocks", action="store_true",
                   help="compare the encoder's blocks (with the functionals, per speaker) instead of the front ends")
    add_data_options(p)
    add_override_option(p)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        cfg = load_config(a.config, a.overrides)
    except ValueError as e:
        p.error(str(e))
    if cfg.features.kind != "whisper" or cfg.features.functionals != "egemaps":
        p.error("--config: needs features of kind whisper with functionals: egemaps")
    data, cache = a.data or default_data_dir(), a.cache or default_cache_dir()
    utts, split = [], []
    try:
        for name in cfg.audio_corpora:
            for k, v in CORPORA[name].splits(data).items():
                utts += v
                split += [k] * len(v)
    except (FileNotFoundError, ValueError) as e:
        p.error(f"--data: {e}")
    frames = audio_frames([u.audio for u in utts], cfg.features, cfg.vad, cache)
    y = np.array([LABELS.index(u.label) for u in utts])
    corpus, speaker, split_of = (np.array([u.corpus for u in utts]), np.array([u.speaker for u in utts]),
                                 np.array(split))
    held_out = cfg.audio_corpora
    rows = []
    if a.blocks:
        pooled = block_vectors([u.audio for u in utts], cfg.features, cfg.vad)
        functionals = vectors(frames, WHISPER_MODELS[cfg.features.whisper].dim, "egemaps")
        for block in range(pooled.shape[1]):
            x = standardise(np.concatenate([pooled[:, block], functionals], 1), speaker)
            for held in held_out:
                rows.append({"block": block, "left_out": held, **probe(x, y, corpus, split_of, held)})
                log.info("%s", rows[-1])
    else:
        for front_end in FRONT_ENDS:
            raw = vectors(frames, WHISPER_MODELS[cfg.features.whisper].dim, front_end)
            train = split_of == "train"
            for norm, x in (("spk", standardise(raw, speaker)),
                            ("none", (raw - raw[train].mean(0)) / (raw[train].std(0) + 1e-6))):
                for held in held_out:
                    row = {"front_end": front_end, "norm": norm, "left_out": held,
                           **probe(x, y, corpus, split_of, held)}
                    rows.append(row)
                    log.info("%s", row)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=1) + "\n")
    if a.blocks:
        print(blocks_table(rows, held_out))
    else:
        print("| front end | normalised | left out | dev UA | UA (its classes) | anger recall | anger precision | "
              "arousal |\n|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['front_end']} | {r['norm']} | {r['left_out']} | {r['dev']:.3f} | {r['ua']:.3f} | "
                  f"{r['anger_recall']:.3f} | {r['anger_precision']:.3f} | {r['arousal']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
