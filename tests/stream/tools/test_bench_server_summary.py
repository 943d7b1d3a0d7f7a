"""``emo-bench --server-calls --repeats``: the ABBA run order and the summary of repetitions, on plain row dicts
(cheap: no models; the real runs are covered once, with one repetition, by test_bench_server)."""

from __future__ import annotations

from emostream.stream.tools.bench.server_summary import aggregate, schedule, table


def row(n: int, p50: float | None, p95: float | None, turns: int = 2, matched: int | None = None,
        wer: float = 0.2) -> dict:
    """One side's measurement of one count and repetition, shaped as server_mode makes it."""
    matched = turns if matched is None else matched
    return {"streams": n, "turns": turns, "finals": matched, "matched": matched, "all_finals": matched == turns,
            "live_ms": {50: p50, 95: p95, 99: p95}, "final_ms": {50: 100.0, 95: 200.0, 99: 250.0}, "wer": wer,
            "kept_up": matched == turns and p95 is not None and p95 <= 1500}


def reps(n: int, pairs: list[tuple[dict, dict]]) -> list[dict]:
    return [{"streams": n, "repetition": r + 1, "in_process": a, "server": b} for r, (a, b) in enumerate(pairs)]


def test_one_repetition_keeps_the_old_order_all_in_process_then_all_server():
    assert schedule([1, 4], 1) == [(1, 0, "in_process"), (4, 0, "in_process"), (1, 0, "server"), (4, 0, "server")]


def test_repetitions_run_abba_per_count_so_a_linear_drift_hits_both_sides_alike():
    order = schedule([2, 8], 4)
    assert [(n, r) for n, r, _ in order] == [(n, r) for n in (2, 8) for r in range(4) for _ in range(2)]
    sides = [side for n, _, side in order if n == 2]
    assert sides == ["in_process", "server", "server", "in_process"] * 2
    # Slot i runs at speed 1 + i * drift: with an even count both sides' mean slot is the same.
    slots = {side: [i for i, s in enumerate(sides) if s == side] for side in ("in_process", "server")}
    assert sum(slots["in_process"]) == sum(slots["server"])


def test_one_repetition_summarises_to_its_own_rows_and_the_table_as_before():
    summary = aggregate(reps(1, [(row(1, 500.0, 800.0), row(1, 520.0, 860.0))])
                        + reps(2, [(row(2, 600.0, 1000.0), row(2, 700.0, 1200.0))]))
    assert [{k: v for k, v in r.items() if k != "repetitions"} for r in summary["in_process"]] == [
        row(1, 500.0, 800.0), row(2, 600.0, 1000.0)]
    assert [p["median_p95_ratio"] for p in summary["paired"]] == [860 / 800, 1200 / 1000]
    assert summary["verdict"] == {"repeats": 1, "max_kept_up": {"in_process": 2, "server": 2}, "as_many": True,
                                  "both_kept_up": [1, 2], "within_10pct": [1]}
    md = table(summary)
    assert "| 1 | 500 | 800 | 520 | 860 | 1.07 | 200 / 200 | 2/2 / 2/2 | 0.200 / 0.200 | yes / yes |" in md
    assert "ABBA" not in md and "Per repetition" not in md
    assert ("server p95 within 10 % of in-process at 1 of the 2 counts both kept up (median paired p95 ratio ≤ 1.10 "
            "over 1 repetition per count).") in md


def test_repetitions_take_medians_sum_counts_and_judge_on_the_median_paired_ratio():
    # The machine slows between repetitions: each pair moves together, so the paired ratios stay close while the
    # latencies themselves spread.
    pairs = [(row(4, 400.0, 600.0), row(4, 420.0, 630.0)),
             (row(4, 900.0, 1200.0), row(4, 800.0, 1260.0, wer=0.1)),
             (row(4, 500.0, 800.0, wer=0.3), row(4, 600.0, 1000.0, wer=0.1))]
    summary = aggregate(reps(4, pairs))
    (a,), (b,) = summary["in_process"], summary["server"]
    assert (a["live_ms"][50], a["live_ms"][95], b["live_ms"][50], b["live_ms"][95]) == (500.0, 800.0, 600.0, 1000.0)
    assert (a["turns"], a["matched"], a["finals"], a["repetitions"], a["wer"], b["wer"]) == (6, 6, 6, 3, 0.2, 0.1)
    (paired,) = summary["paired"]
    assert paired["p95_pairs"] == [[600.0, 630.0], [1200.0, 1260.0], [800.0, 1000.0]]
    assert paired["median_p95_ratio"] == 1.05  # the medians' own ratio, 1000 / 800, would say 1.25
    assert summary["verdict"]["within_10pct"] == [4] and summary["verdict"]["repeats"] == 3
    md = table(summary)
    assert "| 4 | 500 | 800 | 600 | 1,000 | 1.05 |" in md and "6/6 / 6/6" in md
    assert "- 4: 600 / 630 (1.05), 1,200 / 1,260 (1.05), 800 / 1,000 (1.25)" in md
    assert "Each count ran 3 times per side in ABBA order" in md and "over 3 repetitions per count" in md


def test_kept_up_only_if_kept_up_in_every_repetition():
    pairs = [(row(6, 500.0, 900.0), row(6, 500.0, 900.0)),
             (row(6, 500.0, 900.0), row(6, 900.0, 1600.0)),  # too slow once
             (row(6, 500.0, 900.0, matched=1), row(6, None, None, matched=0))]  # finals missing
    summary = aggregate(reps(1, [(row(1, 300.0, 500.0), row(1, 300.0, 500.0))]) + reps(6, pairs))
    a, b = summary["in_process"][1], summary["server"][1]
    assert not a["kept_up"] and not a["all_finals"] and (a["matched"], a["turns"]) == (5, 6)
    assert not b["kept_up"] and b["live_ms"][95] == 1250.0  # the median of the repetitions that had finals
    assert summary["paired"][1]["p95_ratios"] == [1.0, 1600 / 900, None]
    assert summary["verdict"]["max_kept_up"] == {"in_process": 1, "server": 1}
    assert summary["verdict"]["both_kept_up"] == [1] and summary["verdict"]["within_10pct"] == [1]
    assert "900 / - (-)" in table(summary)
