"""``emo-bench --server-calls --repeats R``: the run order of the two sides, and the summary of their repetitions.

Pure functions on plain row dicts (no models), so the aggregation and the verdict are tested on their own. A row
is what ``server_mode`` measures for one side, one count and one repetition: ``streams``, ``turns``, ``finals``,
``matched``, ``all_finals``, ``kept_up``, ``wer`` and ``live_ms``/``final_ms`` percentiles (50, 95, 99).
"""

from __future__ import annotations

from statistics import median
from typing import Any

from emostream.stream.tools.bench.configs import P95_LIMIT_MS
from emostream.stream.tools.bench.tables import fmt, max_kept_up

SIDES = ("in_process", "server")
WITHIN = 1.10  # issue 15: server p95 within 10 % of in-process


def schedule(counts: list[int], repeats: int) -> list[tuple[int, int, str]]:
    """(count, repetition, side) in run order.

    One repetition runs every in-process count, then every server count, as before repetitions existed (the
    server's models are then not in memory during in-process runs). More run each count's repetitions back to back
    in ABBA order (in-process, server, server, in-process, ...): each pair is adjacent in time and its order
    alternates, so a steady drift in machine speed favours neither side (exactly so with an even count).
    """
    if repeats == 1:
        return [(n, 0, side) for side in SIDES for n in counts]
    return [(n, r, side) for n in counts for r in range(repeats) for side in (SIDES if r % 2 == 0 else SIDES[::-1])]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(median(present), 1) if present else None


def _ratio(inproc: dict, server: dict) -> float | None:
    a, b = inproc["live_ms"][95], server["live_ms"][95]
    return b / a if a and b is not None else None


def _side_summary(rows: list[dict]) -> dict[str, Any]:
    """One side's repetitions of one count: latencies and WER the median, counts summed, flags held in all."""
    return {"streams": rows[0]["streams"], "repetitions": len(rows),
            **{k: sum(r[k] for r in rows) for k in ("turns", "finals", "matched")},
            **{k: all(r[k] for r in rows) for k in ("all_finals", "kept_up")},
            **{k: {q: _median([r[k][q] for r in rows]) for q in rows[0][k]} for k in ("live_ms", "final_ms")},
            "wer": median(r["wer"] for r in rows)}


def aggregate(repetitions: list[dict]) -> dict[str, Any]:
    """Summary rows per side and count, paired p95 ratios per count, and the verdict on issue 15's target.

    ``repetitions``: one dict per count and repetition, with ``streams`` and a row per side (``in_process``,
    ``server``). The ratio is paired (both sides of one repetition, run back to back) before the median is
    taken, so drift between repetitions cancels in each ratio rather than adding to the spread of the medians.
    """
    counts = sorted({rep["streams"] for rep in repetitions})
    by_count = {n: [rep for rep in repetitions if rep["streams"] == n] for n in counts}
    sides = {side: [_side_summary([rep[side] for rep in by_count[n]]) for n in counts] for side in SIDES}
    paired = []
    for n in counts:
        ratios = [_ratio(rep["in_process"], rep["server"]) for rep in by_count[n]]
        present = [r for r in ratios if r is not None]
        paired.append({"streams": n,
                       "p95_pairs": [[rep["in_process"]["live_ms"][95], rep["server"]["live_ms"][95]]
                                     for rep in by_count[n]],
                       "p95_ratios": ratios, "median_p95_ratio": median(present) if present else None})
    both = [p["streams"] for p, a, b in zip(paired, sides["in_process"], sides["server"], strict=True)
            if a["kept_up"] and b["kept_up"]]
    kept = {side: max_kept_up(rows) for side, rows in sides.items()}
    return {**sides, "paired": paired,
            "verdict": {"repeats": max(len(reps) for reps in by_count.values()), "max_kept_up": kept,
                        "as_many": kept["server"] >= kept["in_process"], "both_kept_up": both,
                        "within_10pct": [p["streams"] for p in paired if p["streams"] in both
                                         and p["median_p95_ratio"] is not None and p["median_p95_ratio"] <= WITHIN]}}


def table(summary: dict[str, Any]) -> str:
    """The markdown of ``aggregate``'s summary: with one repetition, the table as it was before repetitions."""
    verdict, repeats = summary["verdict"], summary["verdict"]["repeats"]
    lines = ["### Live calls over the network vs in-process replay (same telephone audio, real time)", "",
             "| streams | in-process p50 | in-process p95 | server p50 | server p95 | p95 ratio | pipeline p95 "
             "(in-process / server) | finals (in-process / server) | WER (in-process / server) "
             "| kept up (in-process / server) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for a, b, p in zip(summary["in_process"], summary["server"], summary["paired"], strict=True):
        ratio = "-" if p["median_p95_ratio"] is None else f"{p['median_p95_ratio']:.2f}"
        lines.append(f"| {a['streams']} | {fmt(a['live_ms'][50])} | {fmt(a['live_ms'][95])} | {fmt(b['live_ms'][50])} "
                     f"| {fmt(b['live_ms'][95])} | {ratio} | {fmt(a['final_ms'][95])} / {fmt(b['final_ms'][95])} "
                     f"| {a['matched']}/{a['turns']} / {b['matched']}/{b['turns']} "
                     f"| {a['wer']:.3f} / {b['wer']:.3f} | {yes(a['kept_up'])} / {yes(b['kept_up'])} |")
    lines += ["", "Latency: end of an utterance's audio at the source (the sender process, for the server) to its "
              "final `emotion` event in hand (read on the server's ZeroMQ bus, for the server), in ms. Pipeline: the "
              "events' own `end_to_end` (from the last voiced frame reaching the pipeline to publishing). Kept up: "
              f"every final arrived and live p95 ≤ {P95_LIMIT_MS:.0f} ms (in-process also: the paced source never held "
              "back by more than the bench's lag limit)."]
    if repeats > 1:
        lines += ["", f"Each count ran {repeats} times per side in ABBA order (in-process, server, server, in-process, "
                  "...). Latencies and WER: the median over the repetitions; finals summed; kept up: in every "
                  "repetition; p95 ratio: the median of each repetition's server / in-process p95. Per repetition, "
                  "in-process / server p95 ms (ratio):", ""]
        lines += [f"- {p['streams']}: " + ", ".join(
            f"{fmt(a)} / {fmt(b)} ({'-' if r is None else f'{r:.2f}'})"
            for (a, b), r in zip(p["p95_pairs"], p["p95_ratios"], strict=True)) for p in summary["paired"]]
    kept = verdict["max_kept_up"]
    lines += ["", f"Most real-time calls kept up: in-process {kept['in_process']}, server {kept['server']} "
              f"(target: the server as many as in-process: {yes(verdict['as_many'])}); server p95 within 10 % of "
              f"in-process at {len(verdict['within_10pct'])} of the {len(verdict['both_kept_up'])} counts both kept up "
              f"(median paired p95 ratio ≤ {WITHIN:.2f} over {repeats} repetition{'s' if repeats > 1 else ''} per "
              "count)."]
    return "\n".join(lines) + "\n"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"
