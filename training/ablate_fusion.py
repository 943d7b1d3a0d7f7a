"""Late-fusion ablation: the weight of the audio branch in a late-fusion bundle, on dev and test.

    python -m emostream.training.ablate_fusion --bundle models/bundles/default --weights 0,0.25,0.5,0.75,1

(``PYTHONPATH=.dev`` in a checkout). The late-fusion baseline fuses the two branches' log-probabilities with
a fixed weight (``audio_weight``); changing it needs no retraining. For each weight the bundle is scored like
``emo-eval`` on held-out label-matched pairs (fused UA) and on RAVDESS clips with their own emotionless
statement (fused UA, to compare with audio alone), for the dev split (where a weight would be chosen) and the
test split (reported only). A bundle with a text reference (training/calibrate.py) is scored with it and without
it at each weight, and each with every fusion rule: the product or the mixture of the branches' probabilities, with
fixed or confidence-scaled weights (models/blocks.py ``fuse_log_probs``).
A bundle that learned from GoEmotions is also scored on ``--spoken`` GoEmotions utterances of the split read aloud by
espeak-ng (training/spoken_text.py): a voice out of every corpus's domain with clear words, where the fused UA
should follow the text's. Each branch runs once per input set; every setting is fused from the stored logits.
The setting chosen is the one whose worst dev fused UA is highest: each input set is one thing fusion must do, and it
must do all of them (agree with clear words and a clear voice: pairs; leave the voice's decision to it under
emotionless words: statement; follow clear words over a voice out of its domain: spoken), so a high score on one
set must not buy a failure on another, as a mean would let it. Prints a markdown table and the choice, and writes
JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emostream.models.baseline import FUSIONS, fuse
from emostream.models.labels import LABELS
from emostream.training.batching import branch_outputs, label_array
from emostream.training.metrics import scores
from emostream.training.options import add_data_options
from emostream.training.speaker_frames import heard_frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.ablate_fusion", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="a late-fusion bundle (architecture with audio_weight)")
    p.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="comma-separated audio weights in [0, 1]")
    p.add_argument("--out", type=Path, default=Path("runs/ablation_fusion.json"))
    p.add_argument("--spoken", type=int, default=210, metavar="N",
                   help="GoEmotions utterances per split read aloud (spread over the classes; 0: none)")
    add_data_options(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from emostream.models.bundle import load_bundle
    from emostream.training.evaluate import conditions_of
    from emostream.training.paths import default_cache_dir, default_data_dir

    bundle = load_bundle(args.bundle)
    if not hasattr(bundle.model, "audio_weight"):
        p.error(f"--bundle: {bundle.meta.architecture!r} learns its fusion; this ablation is for late fusion")
    weights = [float(w) for w in args.weights.split(",")]
    if any(not 0 <= w <= 1 for w in weights):
        p.error("--weights: each weight must be in [0, 1]")
    data, cache = args.data or default_data_dir(), args.cache or default_cache_dir()
    model = bundle.model
    reference = model.text_reference
    # Each branch runs once per input set; every fusion setting is then computed from the stored logits.
    sets: dict[str, tuple[tuple[torch.Tensor, ...], np.ndarray]] = {}
    for split in ("dev", "test"):
        for corpus, name in (("pairs", "pairs"), ("ravdess", "statement")):
            utts, conditions = conditions_of(bundle, corpus, split, data, cache)
            sets[f"{split}_{name}"] = (branch_outputs(model, conditions[f"{corpus}_{split}_fused"]),
                                       label_array(utts, LABELS))
        if args.spoken and "goemotions" in bundle.meta.data_card.get("corpora", {}):
            inputs, y = spoken_inputs(bundle, split, args.spoken, data, cache)
            sets[f"{split}_spoken"] = (branch_outputs(model, inputs), y)
    rows = []
    for w in weights:
        for ref in (reference, None) if reference is not None else (None,):
            for fusion in FUSIONS:
                row: dict[str, float | str] = {"audio_weight": w, "text_reference": ref is not None, "fusion": fusion}
                for name, ((audio, text, has_audio, has_text), y) in sets.items():
                    fused = fuse(audio, text, has_audio, has_text, w, ref, fusion)
                    row[f"{name}_fused_ua"] = ua(y, fused)
                    row[f"{name}_audio_ua"], row[f"{name}_text_ua"] = ua(y, audio), ua(y, text)
                row["dev_worst"] = min(row[f"{k}_fused_ua"] for k in sets if k.startswith("dev_"))
                rows.append(row)
    best = max(rows, key=lambda r: r["dev_worst"])
    alerts = anger_alerts(sets, best, reference)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "chosen": best, "anger_alerts": alerts}, indent=2) + "\n")
    print(table(rows, spoken="dev_spoken" in sets))
    print(f"\nchosen on dev (the highest worst dev fused UA): audio weight {best['audio_weight']:g}, text reference "
          f"{'yes' if best['text_reference'] else 'no'}, fusion {best['fusion']} ({best['dev_worst']:.3f})")
    print("\nits fused anger >= t on dev (precision / recall of anger), for an alert rule's threshold:")
    for name, by_t in alerts.items():
        print(f"  {name}: " + ", ".join(f"t={t}: {p:.2f} / {r:.2f}" for t, (p, r) in by_t.items()))
    return 0


def anger_alerts(sets: dict[str, Any], best: dict[str, Any], reference: torch.Tensor | None,
                 thresholds: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6)) -> dict[str, dict[float, tuple]]:
    """Precision and recall of "fused anger >= t" on the dev pairs and statement sets, under the chosen setting."""
    anger = LABELS.index("anger")
    out = {}
    for name in ("dev_pairs", "dev_statement"):
        (audio, text, has_audio, has_text), y = sets[name]
        ref = reference if best["text_reference"] else None
        p = fuse(audio, text, has_audio, has_text, best["audio_weight"], ref, best["fusion"]).exp()[:, anger].numpy()
        out[name] = {t: (round(float((y[p >= t] == anger).mean()) if (p >= t).any() else 1.0, 3),
                         round(float((p[y == anger] >= t).mean()), 3)) for t in thresholds}
    return out


def ua(y: np.ndarray, logits: torch.Tensor) -> float:
    return round(scores(y, logits.argmax(1).numpy(), LABELS)["unweighted_recall"], 4)


def table(rows: list[dict[str, Any]], spoken: bool) -> str:
    """The rows as markdown: per split, the fused UA on each input set (audio alone and text alone beside)."""
    head = ["audio weight", "text reference", "fusion", "dev worst"]
    for split in ("dev", "test"):
        head += [f"{split} pairs fused UA", f"{split} statement fused / audio UA"]
        head += [f"{split} spoken fused / text / audio UA"] if spoken else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['audio_weight']:g}", "yes" if r["text_reference"] else "no", str(r["fusion"]),
                 f"{r['dev_worst']:.3f}"]
        for split in ("dev", "test"):
            cells += [f"{r[f'{split}_pairs_fused_ua']:.3f}",
                      f"{r[f'{split}_statement_fused_ua']:.3f} / {r[f'{split}_statement_audio_ua']:.3f}"]
            cells += [" / ".join(f"{r[f'{split}_spoken_{m}_ua']:.3f}" for m in ("fused", "text", "audio"))] \
                if spoken else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spoken_inputs(bundle: Any, split: str, n: int, data: Path, cache: Path) -> tuple[list, np.ndarray]:
    """``n`` GoEmotions utterances of ``split`` (as many of each class as there are, up to n / 7), read aloud, as
    fused inputs (the text with its synthetic voice) and their labels."""
    from emostream.stream.stages.vad import VadConfig
    from emostream.training.batching import dialogue_inputs
    from emostream.training.cache import audio_frames, text_features
    from emostream.training.data.goemotions import load_goemotions
    from emostream.training.spoken_text import speaker_of, spoken

    meta = bundle.meta
    utts = load_goemotions(data, split)
    rng = np.random.default_rng(0)
    picked = []
    for label in LABELS:
        pool = [u for u in utts if u.label == label]
        picked += [pool[i] for i in sorted(rng.choice(len(pool), min(len(pool), n // len(LABELS)), replace=False))]
    paths = spoken(picked, cache / "spoken")
    picked = [replace(u, speaker=speaker_of(p)) for u, p in zip(picked, paths, strict=True)]
    frames = heard_frames(audio_frames(paths, meta.features, VadConfig(**meta.data_card["vad"]), cache), picked,
                          meta.speaker_norm)
    sentences, tokens = text_features([u.text for u in picked], meta.text_encoder, cache)
    return dialogue_inputs(picked, sentences, meta.dims, audio=frames, tokens=tokens), label_array(picked, LABELS)


if __name__ == "__main__":
    sys.exit(main())
