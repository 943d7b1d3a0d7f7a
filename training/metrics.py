"""Classification metrics and their reports (JSON, markdown, confusion-matrix PNG).

WA = accuracy; UA = mean recall over the classes present in the reference (speech-emotion convention);
weighted F1 (the MELD convention) weights each class's F1 by its support; macro F1 averages the
classes present in the reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = utterances of true class i predicted as j."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    """Summary and per-class metrics as plain JSON-able values."""
    if len(y_true) == 0 or len(y_true) != len(y_pred):
        raise ValueError(f"need equal, non-zero numbers of references and predictions ({len(y_true)}, {len(y_pred)})")
    cm = confusion(y_true, y_pred, len(labels))
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "n": int(support.sum()),
        "accuracy": float(tp.sum() / support.sum()),
        "unweighted_recall": float(recall[present].mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()),
        "macro_f1": float(f1[present].mean()),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(labels)
        },
        "confusion": cm.tolist(),
        "labels": list(labels),
    }


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a result, rounded (what a bundle's ``scores`` keep)."""
    keys = ("accuracy", "unweighted_recall", "weighted_f1", "macro_f1")
    return {"n": result["n"], **{k: round(result[k], 4) for k in keys}}


def markdown(result: dict[str, Any], title: str) -> str:
    """A summary line and the per-class table."""
    lines = [
        f"## {title}",
        "",
        f"n = {result['n']}; accuracy (WA) {result['accuracy']:.3f}; unweighted recall (UA) "
        f"{result['unweighted_recall']:.3f}; weighted F1 {result['weighted_f1']:.3f}; "
        f"macro F1 {result['macro_f1']:.3f}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, c in result["per_class"].items():
        lines.append(f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
    return "\n".join(lines) + "\n"


def plot_confusion(result: dict[str, Any], title: str, path: Path) -> None:
    """Row-normalised confusion matrix (recall per true class), with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion"], dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    labels = result["labels"]
    fig, ax = plt.subplots(figsize=(6, 5.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict[str, Any], title: str, out_dir: Path, name: str) -> None:
    """``name.json``, ``name.md`` and ``name.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps({"title": title, **result}, indent=2) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(result, title))
    plot_confusion(result, title, out_dir / f"{name}.png")
