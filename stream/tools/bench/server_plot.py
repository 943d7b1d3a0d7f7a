"""The picture of ``emo-bench --server-calls``: p95 of each repetition per side, and the paired ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emostream.stream.tools.bench.configs import P95_LIMIT_MS
from emostream.stream.tools.bench.server_summary import WITHIN


def plot(summary: dict[str, Any], path: Path) -> None:
    """``summary``: server.json as written (its percentile keys are strings).

    Left: live p95 per call count, a dot per repetition and the median as a line, in-process and server.
    Right: each repetition's server / in-process p95 ratio and their median, against the 10 % target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = summary["paired"]
    counts = [p["streams"] for p in paired]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for side, column, colour, shift in (("in-process", 0, "tab:blue", -0.08), ("server", 1, "tab:orange", 0.08)):
        for p in paired:
            values = [pair[column] for pair in p["p95_pairs"] if pair[column] is not None]
            left.scatter([p["streams"] + shift] * len(values), values, color=colour, s=14, alpha=0.6)
        key = "in_process" if column == 0 else "server"
        left.plot(counts, [row["live_ms"]["95"] for row in summary[key]], color=colour, marker="o", label=side)
    left.axhline(P95_LIMIT_MS, color="grey", linestyle="--", linewidth=1)
    left.set(xlabel="concurrent real-time calls", ylabel="end of speech → final event p95 (ms)",
             title=f"p95 per repetition (dots) and median; dashed: {P95_LIMIT_MS:.0f} ms")
    left.legend(fontsize=8)
    for p in paired:
        ratios = [r for r in p["p95_ratios"] if r is not None]
        right.scatter([p["streams"]] * len(ratios), ratios, color="tab:orange", s=14, alpha=0.6)
    right.plot(counts, [p["median_p95_ratio"] for p in paired], color="tab:orange", marker="o", label="median")
    right.axhline(WITHIN, color="grey", linestyle="--", linewidth=1)
    right.axhline(1.0, color="grey", linewidth=0.5)
    right.set(xlabel="concurrent real-time calls", ylabel="server p95 / in-process p95",
              title=f"paired ratio per repetition; dashed: {WITHIN:.2f}")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xticks(counts)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
