"""``emo-train`` and ``emo-eval``: train and export a bundle (branch-wise or fused, as the config says; on CPU or
CUDA, checkpointed after every epoch and resumable with --resume); score a bundle on a corpus split (meld,
ravdess, or label-matched pairs)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from emostream.models.bundle import DEFAULT_BUNDLE
from emostream.models.whisper_states import PRECISIONS
from emostream.training.options import add_data_options
from emostream.training.paths import default_cache_dir, default_data_dir


def _setup(threads: int, log_file: Path | None, append: bool = False) -> None:
    import torch

    torch.set_num_threads(threads)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a" if append else "w"))  # a resumed run keeps its log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers,
                        force=True)


def _common(p: argparse.ArgumentParser) -> None:
    add_data_options(p)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def train_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="emo-train", description=__doc__)
    p.add_argument("--config", type=Path, required=True, help="training config YAML (e.g. configs/baseline.yaml)")
    p.add_argument("--out", type=Path, default=DEFAULT_BUNDLE,
                   help="bundle directory to write (default: the package's models/bundles/default)")
    p.add_argument("--reports", type=Path, default=None,
                   help="where the log and test reports go (default runs/<bundle id>/ in the current directory)")
    p.add_argument("--subsample", type=int, default=1, metavar="N",
                   help="keep every N-th dialogue/clip of each split: a quick smoke run (default 1: all data)")
    p.add_argument("--resume", action="store_true",
                   help="continue each training loop from its checkpoint in <reports>/checkpoints/ (written after "
                        "every epoch); a finished loop is not retrained; refused when the config or --subsample "
                        "changed. Without it, old checkpoints are deleted and training starts afresh")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where training runs: auto (CUDA when torch sees a GPU), cpu, cuda. On CUDA the config's "
                        "amp key (default true) turns on float16 mixed precision; the bundle is saved from the CPU")
    _common(p)
    args = p.parse_args(argv)
    from emostream.stream.errors import UserError
    from emostream.stream.services.device import resolve_device
    from emostream.training.config import load_config

    try:
        cfg = load_config(args.config)
        device = resolve_device(args.device, "--device")
    except (ValueError, UserError) as e:  # a ConfigError, or a --device this machine lacks
        p.error(str(e))
    reports = args.reports or Path("runs") / cfg.bundle_id
    _setup(args.threads, reports / "train.log", append=args.resume)
    from emostream.training.train import run_training

    cache, resume = args.cache or default_cache_dir(), args.resume
    try:
        if cfg.manifests is not None:
            from emostream.training.fused import run_manifest_training

            run_manifest_training(cfg, args.out, cache, reports, resume=resume, device=device)
        elif cfg.fused:
            from emostream.training.fused import run_fused_training

            run_fused_training(cfg, args.data or default_data_dir(), args.out, cache, reports, every=args.subsample,
                               resume=resume, device=device)
        else:
            run_training(cfg, args.data or default_data_dir(), args.out, cache, reports, every=args.subsample,
                         resume=resume, device=device)
    except (FileNotFoundError, ValueError) as e:  # CheckpointError included
        print(f"emo-train: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"emo-train: interrupted; the same command with --resume continues from the last finished epoch "
              f"(checkpoints in {reports / 'checkpoints'})", file=sys.stderr)
        return 130
    print(f"bundle written to {args.out}; reports in {reports}")
    return 0


def eval_main(argv: list[str] | None = None) -> int:
    from emostream.training.evaluate import CORPORA

    p = argparse.ArgumentParser(prog="emo-eval", description=__doc__)
    p.add_argument("--bundle", type=Path, required=True, help="bundle directory (e.g. models/bundles/default)")
    p.add_argument("--corpus", choices=CORPORA, required=True)
    p.add_argument("--manifest", type=Path, default=None, help="CSV/JSONL manifest to score (--corpus manifest)")
    p.add_argument("--split", default="test", help="meld: train/dev/test; ravdess: train/dev/test actors of the "
                   "bundle's data card (default test)")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default runs/eval/<bundle id>/ in the current directory)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="arithmetic of Whisper's inner blocks, as a stream's model.precision serves them "
                        "(bfloat16 needs a CPU with AVX512-BF16 or AMX; default float32, as trained)")
    _common(p)
    args = p.parse_args(argv)
    _setup(args.threads, None)
    from emostream.models.bundle import BundleError, load_bundle
    from emostream.training.evaluate import evaluate
    from emostream.training.metrics import markdown

    try:
        bundle = load_bundle(args.bundle)
        out = args.out or Path("runs") / "eval" / bundle.meta.id
        results = evaluate(bundle, args.corpus, args.split, args.data or default_data_dir(),
                           args.cache or default_cache_dir(), out, manifest=args.manifest, precision=args.precision)
    except (BundleError, FileNotFoundError, ValueError) as e:
        print(f"emo-eval: error: {e}", file=sys.stderr)
        return 1
    for name, result in results.items():
        print(markdown(result, name))
    print(f"reports (JSON, markdown, confusion PNG) in {out}")
    return 0
