"""``emo-bench --quick``: the benchmark runs end to end and reports sane numbers (no timing thresholds: the
machine is shared, so only the shape and the sanity of the figures are checked, never their size)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from emostream.models.bundle import DEFAULT_BUNDLE, read_meta
from emostream.stream.config import AsrConfig
from emostream.stream.services.shared_states import why_not_shared
from emostream.stream.stages.vad import VadConfig
from emostream.stream.tools.bench.scoring import edit_distance, word_error_rate


def test_word_error_rate_counts_edits_over_reference_words():
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert word_error_rate([("Hello, world!", "hello world"), ("one two", "one")]) == 1 / 4


def test_quick_benchmark_prints_tables_and_writes_results(tmp_path):
    out = tmp_path / "bench"
    p = subprocess.run([sys.executable, "-m", "emostream.stream.tools.bench.cli", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = {line.split("|")[1].strip() + "/" + line.split("|")[2].strip()
            for line in p.stdout.splitlines() if line.startswith("| ")}
    for section in ("### Targets (issue 16)", "### Real-time streams: end of speech",
                    "### Real-time streams: resources", "### Per-stage breakdown", "### emo-stream vs naive",
                    "### Fast replay throughput", "### ASR alone on ground-truth-cut turns",
                    "### Whisper work per utterance", "### Finals of N streams at once"):
        assert section in p.stdout, section
    assert {"emo-stream/1", "naive/1", "tiny.en/wideband", "tiny.en/telephone"} <= rows, rows
    assert "failed" not in p.stdout

    results = json.loads((out / "results.json").read_text())
    assert (out / "latency_hist.png").stat().st_size > 1000
    assert (out / "benchmark.md").read_text() in p.stdout
    assert [(r["config"], r["streams"]) for r in results["realtime"]] == [("emo-stream", 1), ("naive", 1)]
    for run in results["realtime"] + results["fast_replay"]:
        assert run["all_finals"] and run["finals"] == run["turns"] == 2, run
        assert 0.0 <= run["wer"] <= 1.0
        # WER per path: both turns end in a pause. Naive (no speculation) decodes both from the exact cut, and so
        # does emo-stream when its features share the ASR's encode (the default bundle's); otherwise it decodes
        # both from the early guess (the default bundle's, which reads an inner encoder block).
        shares = why_not_shared(read_meta(DEFAULT_BUNDLE).features, AsrConfig().resolved("cpu"), VadConfig(),
                                torch.device("cpu")) == ""
        speculated = 2 if run["config"] == "emo-stream" and not shares else 0
        assert run["turns_by_path"] == {"speculated": speculated, "exact": 2 - speculated, "unknown": 0,
                                         "unmatched": 0}, run
        assert run["wer_by_path"]["speculated" if speculated else "exact"] == run["wer"]
        assert run["final_ms"]["50"] > 0 and run["final_ms"]["95"] >= run["final_ms"]["50"]
        assert run["speed_x"] > 0 and run["peak_rss_mib"] > 0 and run["cpu_cores"] > 0
    # The same two turns in real time and in fast replay (other timing, other load): the same final transcripts.
    assert results["transcript_consistency"] == {c: {"utterances": 2, "differing": 0} for c in ("emo-stream", "naive")}
    for run in results["realtime"]:
        assert run["hangover_ms"]["50"] > 0 and run["estimate_ms"]["50"] > 0
        assert run["final_minus_hangover_ms"]["50"] > 0
        # ASR and text embedding are 0 ms after the endpoint when their speculative work finished within the
        # hangover; the naive pipeline does not speculate, so it pays for both after the endpoint.
        assert set(run["stages_ms"]) >= {"asr", "features", "inference", "text_embedding"}
        assert run["stages_ms"]["asr"] >= 0 and run["stages_ms"]["text_embedding"] >= 0
        if run["config"] == "naive":
            assert run["stages_ms"]["asr"] > 0 and run["stages_ms"]["text_embedding"] > 0
    assert [(r["model"], r["channel"]) for r in results["asr"]] == [("tiny.en", "wideband"), ("tiny.en", "telephone")]
    for row in results["asr"]:
        assert row["median_ms"] > 0 and 0.0 <= row["wer"] <= 1.0
    encoder = results["raw"]["encoder"][0]
    assert encoder["utterance"]["one_pass_cpu_ms"] > 0 and encoder["utterance"]["two_passes_cpu_ms"] > 0
    # N finals at once: every encode done (in batches as they queued), then their N decodes as one batch.
    assert [(sum(r["encode_batches"]), r["decode_batches"]) for r in encoder["streams"]] == [
        (n, [n]) for n in (1, 2, 4, 8, 16)]
