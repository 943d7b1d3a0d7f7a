"""Every seed architecture trained and scored one way, and the table that sets them beside the default.

    python -m emostream.training.seeds --out runs/seeds [--device cuda] [--max-minutes 0] [--arch multab ...]
    python -m emostream.training.seeds --out runs/seeds --report-only

Per architecture (``configs/<arch>.yaml``): its leave-one-corpus-out run (training/cross_corpus.py: each audio
corpus left out whole, the recipe trained on the others paired with the text corpora, the left-out corpus scored
by voice alone) into ``<out>/loco/<arch>``, then its full training (what ``emo-train`` does: the bundle, scored on
the held-out test splits) into ``<out>/bundles/<arch>``. Then ``<out>/seeds.md``, ``seeds.json`` and
``seeds.png``: every seed beside the default bundle and the default's own leave-one-corpus-out run.

``--max-minutes`` replaces each config's wall-clock budget (0: none, the papers' schedule of ``epochs`` with
early stopping); on a 2-core CPU the configs' 5 minutes buy one to a few epochs at the papers' sizes, so the
figures there are a floor, not the architectures' potential. A seed "beats the default" on a corpus left out when
its UA there is higher, and on dev when its voice-alone dev UA (the part of its early-stopping mean that the
default's audio dev measures) is higher.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from emostream.models.bundle import DEFAULT_BUNDLE
from emostream.models.interface import architectures
from emostream.training.config import load_config
from emostream.training.options import add_data_options
from emostream.training.paths import REPO_ROOT, default_cache_dir, default_data_dir

log = logging.getLogger(__name__)

# Every registered architecture but the default's (models/zoo.py): a new seed architecture is trained here too.
SEEDS = tuple(a for a in sorted(architectures()) if a != "late_fusion_baseline")
HELD = ("ravdess", "emodb", "nemo")
# Test-split scores the table shows, as a bundle's ``scores`` names them (training/evaluate.py).
TESTS = {"MELD wF1": ("meld_test_text", "weighted_f1"), "RAVDESS UA": ("ravdess_test_audio", "unweighted_recall"),
         "EmoDB UA": ("emodb_test_audio", "unweighted_recall"), "nEMO UA": ("nemo_test_audio", "unweighted_recall")}


def train_seed(arch: str, configs: Path, out: Path, data_dir: Path, cache_dir: Path, device: str,
               max_minutes: float | None) -> None:
    """The seed's leave-one-corpus-out run and its full training, each on the config's recipe and budget (or
    ``max_minutes``)."""
    from emostream.training.cross_corpus import run as leave_corpora_out
    from emostream.training.fused import run_fused_training

    overrides = [] if max_minutes is None else [f"fused_training.max_minutes={max_minutes}"]
    cfg = load_config(configs / f"{arch}.yaml", overrides)
    log.info("%s: leaving each audio corpus out", arch)
    leave_corpora_out(cfg, data_dir, cache_dir, out / "loco" / arch, ("audio",), device=device)
    log.info("%s: training on every corpus", arch)
    run_fused_training(cfg, data_dir, out / "bundles" / arch, cache_dir, out / "reports" / arch, device=device)


def _loco(path: Path) -> dict[str, Any]:
    results = json.loads(path.read_text())["results"]
    row: dict[str, Any] = {}
    for held in HELD:
        r = results.get(held)
        if r is None:
            continue
        # a fused seed early-stops on the mean of its dev parts; its voice alone compares with the default's dev
        row[held] = {"dev_audio": r.get("dev_parts", {}).get("audio", r["dev"]),
                     "ua": r["clean"]["unweighted_recall"], "telephone": r["telephone"]["unweighted_recall"],
                     "anger_recall": r["clean"]["per_class"]["anger"]["recall"],
                     "anger_precision": r["clean"]["per_class"]["anger"]["precision"],
                     "epochs_run": r.get("epochs_run")}
    return row


def _bundle(path: Path) -> dict[str, Any]:
    meta = json.loads(path.read_text())
    scores = meta.get("scores", {})
    run = meta.get("data_card", {}).get("training", {}).get("run", {})
    return {"tests": {k: scores.get(s, {}).get(m) for k, (s, m) in TESTS.items()},
            "epochs_run": run.get("epochs_run"), "stopped_by_budget": run.get("stopped_by_budget")}


def collect(out: Path, default_loco: Path, default_bundle: Path) -> dict[str, dict[str, Any]]:
    """Every seed's figures found under ``out``, and the default's, keyed by name."""
    rows = {"default": {"loco": _loco(default_loco), **_bundle(default_bundle / "bundle.json")}}
    for arch in SEEDS:
        loco, bundle = out / "loco" / arch / "cross_corpus.json", out / "bundles" / arch / "bundle.json"
        if loco.is_file() or bundle.is_file():
            rows[arch] = {"loco": _loco(loco) if loco.is_file() else {},
                          **(_bundle(bundle) if bundle.is_file() else {"tests": {}})}
    return rows


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _mark(x: float | None, ref: float | None) -> str:
    """``x``, bold where it beats the default's ``ref``."""
    return f"**{_f(x)}**" if x is not None and ref is not None and x > ref else _f(x)


def beats(row: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Where a seed is above the default: ``<corpus> dev``, ``<corpus> left out``, ``<corpus> phone``, or a test
    split's name."""
    won = []
    for held, r in row["loco"].items():
        d = ref["loco"].get(held, {})
        won += [f"{held} {what}" for key, what in (("dev_audio", "dev"), ("ua", "left out"), ("telephone", "phone"))
                if d.get(key) is not None and r[key] > d[key]]
    won += [name for name, x in row["tests"].items() if x is not None and ref["tests"].get(name) is not None
            and x > ref["tests"][name]]
    return won


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown: leave-one-corpus-out figures, then the test splits, each row against the default (bold: above
    it)."""
    ref = rows["default"]
    lines = ["| model | " + " | ".join(f"{h}: dev / left out / phone / anger R / anger P" for h in HELD)
            + " | epochs run per fold |", "|---|" + "---|" * (len(HELD) + 1)]
    for name, row in rows.items():
        cells = []
        for held in HELD:
            r, d = row["loco"].get(held), ref["loco"].get(held, {})
            cells.append("-" if r is None else " / ".join(
                [_mark(r["dev_audio"], d.get("dev_audio")), _mark(r["ua"], d.get("ua")),
                 _mark(r["telephone"], d.get("telephone")), _f(r["anger_recall"]), _f(r["anger_precision"])]))
        epochs = ", ".join(str(r.get("epochs_run") or "-") for r in row["loco"].values()) if name != "default" else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {epochs} |")
    lines += ["", "| model | " + " | ".join(TESTS) + " | epochs run (budget) | above the default on |",
             "|---|" + "---|" * (len(TESTS) + 2)]
    for name, row in rows.items():
        tests = [_mark(row["tests"].get(k), ref["tests"].get(k) if name != "default" else None) for k in TESTS]
        run = "-" if row.get("epochs_run") is None else \
            f"{row['epochs_run']}{' (budget)' if row.get('stopped_by_budget') else ''}"
        won = "-" if name == "default" else (", ".join(beats(row, ref)) or "nowhere")
        lines.append(f"| {name} | " + " | ".join(tests) + f" | {run} | {won} |")
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, dict[str, Any]], path: Path) -> None:
    """Grouped bars: each model's UA on every corpus left out, the chance line per corpus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from emostream.training.data.registry import CORPORA

    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ua = [rows[name]["loco"].get(h, {}).get("ua", 0.0) for h in HELD]
        ax.bar([k + i * width for k in range(len(HELD))], ua, width, label=name)
    for k, held in enumerate(HELD):
        chance = 1 / len(CORPORA[held].classes)
        ax.hlines(chance, k - width / 2, k + 0.8 - width / 2, colors="k", linestyles=":")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(HELD))], [f"{h} left out" for h in HELD])
    ax.set_ylabel("UA, voice alone (dotted: chance)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(out: Path, default_loco: Path, default_bundle: Path) -> str:
    rows = collect(out, default_loco, default_bundle)
    text = table(rows)
    (out / "seeds.json").write_text(json.dumps(rows, indent=1))
    (out / "seeds.md").write_text(text)
    plot(rows, out / "seeds.png")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m emostream.training.seeds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/seeds"), help="where runs and the report go")
    p.add_argument("--arch", action="append", choices=SEEDS, help="train only these (repeatable; default all)")
    p.add_argument("--configs", type=Path, default=REPO_ROOT / "configs", help="folder of <arch>.yaml")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where training runs: auto (CUDA when torch sees a GPU), cpu, cuda")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="each training's wall-clock budget (0: none); default: the config's")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--report-only", action="store_true", help="only build the report from what --out holds")
    p.add_argument("--default-loco", type=Path, default=REPO_ROOT / "docs/results/cross_corpus/cross_corpus.json",
                   help="the default recipe's leave-one-corpus-out results")
    p.add_argument("--default-bundle", type=Path, default=DEFAULT_BUNDLE)
    add_data_options(p)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not a.default_loco.is_file():
        print(f"seeds: error: the default's leave-one-corpus-out results are not at {a.default_loco}; pass "
              "--default-loco (docs/results/cross_corpus/cross_corpus.json of a checkout)", file=sys.stderr)
        return 1
    from emostream.stream.errors import UserError
    from emostream.stream.services.device import resolve_device

    try:
        if not a.report_only:
            device = str(resolve_device(a.device, "--device"))
            for arch in a.arch or SEEDS:
                train_seed(arch, a.configs, a.out, a.data or default_data_dir(), a.cache or default_cache_dir(),
                           device, a.max_minutes)
        a.out.mkdir(parents=True, exist_ok=True)
        print(report(a.out, a.default_loco, a.default_bundle))
    except (FileNotFoundError, ValueError, UserError) as e:  # a ConfigError, a missing corpus, no such GPU
        print(f"seeds: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
