"""Figures of one job from its raw events: latency percentiles, stage medians, completeness, WER, resources."""

from __future__ import annotations

from typing import Any

from emostream.stream.tools.bench.configs import LAG_LIMIT_S, P95_LIMIT_MS
from emostream.stream.tools.bench.scoring import match, pct, word_error_rate

# Where a turn's final transcript came from: a decode started during the hangover on the early guess (audio
# short of the post-roll), a decode of the utterance as the endpoint cut it, not said (results saved before
# events carried it), or no final matched the turn.
PATHS = ("speculated", "exact", "unknown", "unmatched")


def path(event: dict | None) -> str:
    if event is None:
        return "unmatched"
    speculated = event.get("asr", {}).get("speculated")
    return "unknown" if speculated is None else "speculated" if speculated else "exact"


def summarise_streams(raw: dict) -> dict:
    """Latency percentiles, stage medians, completeness and WER of one stream job (from its raw events)."""
    job = raw["job"]
    summary: dict[str, Any] = {"config": job["config"], "streams": job["streams"], "realtime": job["realtime"],
                               "limit": job.get("limit", ""), "cpu_fraction": job.get("cpu_fraction", 1.0)}
    if "failed" in raw:
        return summary | {"failed": raw["failed"]}
    events = raw["events"]
    finals = [e for e in events if e["type"] == "emotion"]
    estimates = [e for e in events if e["type"] == "emotion_estimate"]
    last_metrics = {e["stream_id"]: e for e in events if e["type"] == "metrics"}
    pairs, turns, matched, live = [], 0, 0, []
    by_path: dict[str, list[tuple[str, str]]] = {p: [] for p in PATHS}
    for sid, s in raw["streams"].items():
        mine = [e for e in finals if e["stream_id"] == sid]
        got = match(mine, s["dialogue"]["turns"])
        turns += len(got)
        matched += sum(e is not None for e in got)
        for t, e in zip(s["dialogue"]["turns"], got, strict=True):
            pairs.append((t["text"], e["transcript"] if e else ""))
            by_path[path(e)].append(pairs[-1])
        live += [(e["arrival"] - (s["t0"] + e["end_s"])) * 1000 for e in mine]
    e2e = [e["latency_ms"]["end_to_end"] for e in finals]
    hang = [e["latency_ms"]["endpoint"] for e in finals]
    est = [e["latency_ms"]["end_to_end"] - e["latency_ms"]["endpoint"] for e in estimates]
    stages = sorted({k for e in finals for k in e["latency_ms"]} - {"end_to_end"})
    audio_s = sum(s["dialogue"]["duration_s"] for s in raw["streams"].values())
    longest = max(s["dialogue"]["duration_s"] for s in raw["streams"].values())  # the wall time a paced run needs
    lag = max((s["lag_s"] for s in raw["streams"].values()), default=0.0)
    summary |= {
        "turns": turns, "finals": len(finals), "matched": matched, "all_finals": matched == turns == len(finals),
        "final_ms": {q: pct(e2e, q) for q in (50, 95, 99)},
        "live_ms": {q: pct(live, q) for q in (50, 95, 99)},
        "hangover_ms": {q: pct(hang, q) for q in (50, 95)},
        "final_minus_hangover_ms": {q: pct([a - b for a, b in zip(e2e, hang, strict=True)], q) for q in (50, 95)},
        "estimate_ms": {q: pct(est, q) for q in (50, 95)},
        "stages_ms": {k: pct([e["latency_ms"][k] for e in finals if k in e["latency_ms"]], 50) for k in stages},
        "partials": sum(e["type"] == "partial" for e in events),
        "dropped_partials": sum(m["dropped_partials"] for m in last_metrics.values()),
        "audio_s": audio_s, "wall_s": raw["wall_s"], "rtf": raw["wall_s"] / longest,
        "speed_x": audio_s / raw["wall_s"], "source_lag_s": lag, "cpu_cores": raw["cpu_cores"],
        "peak_rss_mib": raw["peak_rss_mib"], "wer": word_error_rate(pairs), "errors": raw["errors"],
        "wer_by_path": {p: word_error_rate(v) if v else None for p, v in by_path.items()},
        "turns_by_path": {p: len(v) for p, v in by_path.items()},
        "loadavg": raw["loadavg"], "batches": raw.get("batches", {}),
    }
    p95_live = summary["live_ms"][95]
    summary["kept_up"] = bool(job["realtime"] and summary["all_finals"] and not raw["errors"]
                              and p95_live is not None and p95_live <= P95_LIMIT_MS and lag <= LAG_LIMIT_S)
    return summary


def summarise_asr(raw: dict) -> list[dict]:
    if "failed" in raw:
        return [{"failed": raw["failed"]}]
    # Rows saved before the ASR bench had models and channels were tiny.en on wideband audio.
    old = {"model": "tiny.en", "channel": "wideband"}
    return [old | {k: v for k, v in r.items() if k not in ("decode_ms", "hypotheses")}
            | {"median_ms": pct(r["decode_ms"], 50), "p95_ms": pct(r["decode_ms"], 95),
               "loadavg": raw["loadavg"]} for r in raw["rows"]]


def transcript_consistency(raws: list[dict]) -> dict[str, dict[str, int]]:
    """Per configuration: utterances (dialogue, voiced bounds) seen in several runs, and how many of them got a
    different final transcript in some run. The runs differ in timing only (stream count, real time or fast
    replay, load), so any difference is a timing-dependent path."""
    seen: dict[str, dict[tuple, set[str]]] = {}
    for raw in raws:
        if "events" not in raw:
            continue
        names = {sid: s["dialogue"]["name"] for sid, s in raw["streams"].items()}
        texts = seen.setdefault(raw["job"]["config"], {})
        for e in raw["events"]:
            if e["type"] == "emotion":
                texts.setdefault((names[e["stream_id"]], e["start_s"], e["end_s"]), set()).add(e["transcript"])
    return {c: {"utterances": len(t), "differing": sum(len(v) > 1 for v in t.values())} for c, t in seen.items()}
