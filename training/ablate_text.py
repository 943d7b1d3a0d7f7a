"""Text-branch ablations: MELD dev and test weighted F1 for each text encoder and context size H.

    python -m emostream.training.ablate_text --config configs/baseline.yaml --sizes 0,1,2,4,8
    python -m emostream.training.ablate_text --config configs/baseline.yaml --sizes 0,4 \\
        --encoders all-MiniLM-L6-v2,all-mpnet-base-v2

(``PYTHONPATH=.dev`` in a checkout). Trains only the baseline's text branch (``fit_branch``, the config's
``text_training`` and seed) once per (encoder, H), selects the epoch on MELD dev, then scores MELD test with
past-only context; prints a markdown table and writes it as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import torch

from emostream.training.options import add_data_options


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.ablate_text", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="a branch-wise config (e.g. configs/baseline.yaml)")
    p.add_argument("--sizes", default="0,1,2,4,8", help="comma-separated context sizes H")
    p.add_argument("--encoders", default="", help="comma-separated packaged text encoders (default: the config's)")
    p.add_argument("--out", type=Path, default=Path("runs/ablation_text.json"))
    add_data_options(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from emostream.models.labels import LABELS
    from emostream.models.text_encoder import TextEncoderSpec
    from emostream.training.batching import dialogue_inputs, label_array, predict
    from emostream.training.cache import text_features
    from emostream.training.config import load_config
    from emostream.training.data.meld import load_meld
    from emostream.training.metrics import scores
    from emostream.training.paths import default_cache_dir, default_data_dir
    from emostream.training.runs import new_model
    from emostream.training.train import fit_branch

    cfg = load_config(args.config)
    if cfg.text_training is None:
        p.error("--config needs a text_training section (a branch-wise config such as configs/baseline.yaml)")
    try:
        encoders = [TextEncoderSpec.from_dict(cfg.text_encoder.to_dict() | {"name": name})
                    for name in args.encoders.split(",") if name] or [cfg.text_encoder]
    except ValueError as e:
        p.error(f"--encoders: {e}")
    data, cache = args.data or default_data_dir(), args.cache or default_cache_dir()
    meld = {s: load_meld(data, s) for s in ("train", "dev", "test")}
    y = {k: label_array(v, LABELS) for k, v in meld.items()}
    rows = []
    for encoder in encoders:
        texts = [u.text for v in meld.values() for u in v]
        sentences, tokens = text_features(texts, encoder, cache)
        for h in (int(x) for x in args.sizes.split(",")):
            dims = dataclasses.replace(cfg.dims(), context_size=h, text_dim=encoder.dim)
            model = new_model(cfg, dims)
            inputs = {k: dialogue_inputs(v, sentences, dims, tokens=tokens) for k, v in meld.items()}

            def dev(model=model, inputs=inputs) -> float:
                return scores(y["dev"], predict(model, inputs["dev"]).argmax(1), LABELS)["weighted_f1"]

            run = fit_branch(model, "text", inputs["train"], y["train"], dev, cfg.text_training, cfg.seed)
            test = scores(y["test"], predict(model, inputs["test"]).argmax(1), LABELS)["weighted_f1"]
            rows.append({"encoder": encoder.name, "H": h, "dev_wf1": round(run.best_dev, 4),
                         "test_wf1": round(test, 4), "best_epoch": run.best_epoch})
            print(f"{encoder.name} H={h}: dev wF1 {run.best_dev:.3f} (epoch {run.best_epoch}), test wF1 {test:.3f}",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print("| text encoder | H | MELD dev wF1 (selection) | MELD test wF1 | best epoch |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['encoder']} | {r['H']} | {r['dev_wf1']:.3f} | {r['test_wf1']:.3f} | {r['best_epoch']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
