"""Late-fusion ablation: the weight of the audio branch in a late-fusion bundle, on dev and test.

    python -m emostream.training.ablate_fusion --bundle models/bundles/default --weights 0,0.25,0.5,0.75,1

(``PYTHONPATH=.dev`` in a checkout). The late-fusion baseline fuses the two branches' log-probabilities with
a fixed weight (``audio_weight``); changing it needs no retraining. For each weight the bundle is scored like
``emo-eval`` on held-out label-matched pairs (fused UA) and on RAVDESS clips with their own emotionless
statement (fused UA, to compare with audio alone), for the dev split (where a weight would be chosen) and the
test split (reported only). A bundle with a text reference (training/calibrate.py) is scored with it and without
it at each weight. Prints a markdown table and writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import torch

from emostream.training.options import add_data_options


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.ablate_fusion", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="a late-fusion bundle (architecture with audio_weight)")
    p.add_argument("--weights", default="0,0.25,0.5,0.75,1", help="comma-separated audio weights in [0, 1]")
    p.add_argument("--out", type=Path, default=Path("runs/ablation_fusion.json"))
    add_data_options(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from emostream.models.bundle import load_bundle
    from emostream.training.evaluate import evaluate
    from emostream.training.paths import default_cache_dir, default_data_dir

    bundle = load_bundle(args.bundle)
    if not hasattr(bundle.model, "audio_weight"):
        p.error(f"--bundle: {bundle.meta.architecture!r} learns its fusion; this ablation is for late fusion")
    weights = [float(w) for w in args.weights.split(",")]
    if any(not 0 <= w <= 1 for w in weights):
        p.error("--weights: each weight must be in [0, 1]")
    data, cache = args.data or default_data_dir(), args.cache or default_cache_dir()
    reference = bundle.model.text_reference
    variants = [(w, ref) for w in weights for ref in ((reference, None) if reference is not None else (None,))]
    rows = []
    with tempfile.TemporaryDirectory() as reports:
        for w, ref in variants:
            bundle.model.audio_weight, bundle.model.text_reference = w, ref
            row: dict[str, float] = {"audio_weight": w, "text_reference": ref is not None}
            for split in ("dev", "test"):
                pairs = evaluate(bundle, "pairs", split, data, cache, Path(reports))
                clips = evaluate(bundle, "ravdess", split, data, cache, Path(reports))
                row[f"{split}_pairs_fused_ua"] = round(pairs[f"pairs_{split}_fused"]["unweighted_recall"], 4)
                row[f"{split}_statement_fused_ua"] = round(clips[f"ravdess_{split}_fused"]["unweighted_recall"], 4)
                row[f"{split}_audio_ua"] = round(clips[f"ravdess_{split}_audio"]["unweighted_recall"], 4)
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| audio weight | text reference | dev pairs fused UA | dev statement + audio UA | test pairs fused UA | "
          "test statement + audio UA | test audio alone UA |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['audio_weight']:g} | {'yes' if r['text_reference'] else 'no'} | {r['dev_pairs_fused_ua']:.3f} | "
              f"{r['dev_statement_fused_ua']:.3f} | "
              f"{r['test_pairs_fused_ua']:.3f} | {r['test_statement_fused_ua']:.3f} | {r['test_audio_ua']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
