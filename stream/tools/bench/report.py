"""The report from the raw results (measured now or saved in results.json): summaries, markdown, histogram."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from emostream.stream.tools.bench.configs import CONFIGS, P95_LIMIT_MS
from emostream.stream.tools.bench.summary import summarise_asr, summarise_streams, transcript_consistency
from emostream.stream.tools.bench.tables import (
    asr_table,
    comparison,
    condition,
    consistency_text,
    encoder_tables,
    fast_table,
    realtime_tables,
    targets,
    targets_table,
)

EVENT_FIELDS = ("type", "stream_id", "utterance_id", "arrival", "start_s", "end_s", "latency_ms", "transcript",
                "label", "revision", "dropped_partials", "asr")


def slim(raw: dict) -> dict:
    """A stream job's raw result with each event cut to what the report reads (scores would make it megabytes)."""
    if "events" not in raw:
        return raw
    return raw | {"events": [{k: e[k] for k in EVENT_FIELDS if k in e} for e in raw["events"]]}


RAW_KEYS = ("command", "machine", "measured", "loadavg_before", "loadavg_after", "dialogues", "raw")


def report(collected: dict) -> dict:
    """Summaries, verdicts and markdown from the raw results (also for re-rendering a saved results.json)."""
    raw = collected["raw"] | {kind: [slim(r) for r in collected["raw"][kind]] for kind in ("realtime", "fast_replay")}
    collected = collected | {"raw": raw}
    rt = [summarise_streams(r) | {"_e2e": [e["latency_ms"]["end_to_end"] for e in r.get("events", [])
                                           if e["type"] == "emotion"]} for r in raw["realtime"]]
    fast = [summarise_streams(r) for r in raw["fast_replay"]]
    asr = summarise_asr(raw["asr"]) if raw["asr"] else []
    limits = sorted({r["limit"] for r in rt + fast}, key=lambda limit: (limit != "", limit))  # full speed first
    comp_texts, comps, target_items = [], {}, {}
    for limit in limits:
        rt_c, fast_c = [r for r in rt if r["limit"] == limit], [r for r in fast if r["limit"] == limit]
        text, comps[condition(limit)] = comparison(rt_c, limit)
        comp_texts.append(text)
        fraction = next(r["cpu_fraction"] for r in rt_c + fast_c)
        target_items[condition(limit)] = targets(rt_c, fast_c, comps[condition(limit)], fraction)
    dialogues = collected["dialogues"]
    names = ", ".join(f"{d['name']} ({d['duration_s']:.1f} s, {len(d['turns'])} turns)" for d in dialogues)
    header = (f"Measured {collected['measured']} on {collected['machine']} (`{collected['command']}`); "
              f"Whisper tiny.en int8; dialogues: "
              f"{names}; stream i replays dialogue i mod {len(dialogues)}. Load average (1, 5, 15 min) before: "
              f"{', '.join(f'{x:.2f}' for x in collected['loadavg_before'])}; after: "
              f"{', '.join(f'{x:.2f}' for x in collected['loadavg_after'])}.")
    # The machine's own speed, to scale the figures by: naive's decode (30 s window, beam 5) at one stream.
    yardstick = "; ".join(f"{condition(r['limit'])} {r['stages_ms']['asr']:,.0f} ms" for r in rt
                          if r["config"] == "naive" and r["streams"] == 1 and "asr" in r.get("stages_ms", {}))
    header += f" Machine speed, naive decode per final at one stream (median): {yardstick or '-'}."
    consistency = transcript_consistency(raw["realtime"] + raw["fast_replay"])
    sections = [header, targets_table(target_items), realtime_tables(rt), *comp_texts, fast_table(fast),
                consistency_text(consistency)]
    if asr:
        sections.append(asr_table(asr))
    if raw.get("encoder"):
        sections.append(encoder_tables(raw["encoder"]))
    summaries = {"targets": target_items, "comparison": comps, "asr": asr, "fast_replay": fast,
                 "transcript_consistency": consistency,
                 "realtime": [{k: v for k, v in r.items() if k != "_e2e"} for r in rt]}
    return {"markdown": "\n\n".join(sections) + "\n", "results": summaries | {k: collected[k] for k in RAW_KEYS},
            "realtime": rt}


def write(rep: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # Compact: the raw events make it large; the summaries come first for a reader (``jq .targets``).
    (out / "results.json").write_text(json.dumps(rep["results"], separators=(",", ":"), default=str) + "\n")
    (out / "benchmark.md").write_text(rep["markdown"])
    histogram(rep["realtime"], out / "latency_hist.png")
    print(rep["markdown"])
    print(f"emo-bench: wrote {out / 'results.json'}, {out / 'latency_hist.png'}, {out / 'benchmark.md'}",
          file=sys.stderr)


def histogram(runs: list[dict], path: Path) -> None:
    """Final-event latency per configuration: one panel per pipeline, one step histogram per stream count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(CONFIGS), 1, figsize=(9, 3.2 * len(CONFIGS)), sharex=True)
    values = [e for r in runs for e in r.get("_e2e", [])]
    # Log-spaced: one stream sits under a second, an overloaded configuration runs to tens of seconds.
    bins = np.geomspace(max(100.0, 0.9 * min(values, default=300.0)), max([*values, 2000.0]) * 1.1, 60)
    for ax, name in zip(np.atleast_1d(axes), CONFIGS, strict=True):
        for r in (r for r in runs if r["config"] == name and r.get("_e2e")):
            limit = f" @ {r['limit']}" if r.get("limit") else ""
            ax.hist(r["_e2e"], bins=bins, histtype="step", linewidth=1.5, label=f"{r['streams']} stream(s){limit}")
        for mark, style in ((800, ":"), (P95_LIMIT_MS, "--")):
            ax.axvline(mark, color="grey", linestyle=style, linewidth=1)
        ax.set_title(f"{name}: end of speech → fused final event (real time)")
        ax.set_xscale("log")
        ax.set_ylabel("final events")
        ax.legend(fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("latency (ms); dotted 800 ms, dashed 1.5 s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
