"""What the bench compares (emo-stream's settings against a naive pipeline's) and the marks it judges them by."""

from __future__ import annotations

from typing import Any

# Naive = each utterance transcribed after its endpoint with faster-whisper's defaults: no partials, no speculation.
NAIVE_ASR = {"window_s": 30.0, "beam_size": 5, "partial_interval_ms": 0, "speculate_after_ms": 0}
CONFIGS: dict[str, dict[str, Any]] = {"emo-stream": {}, "naive": NAIVE_ASR}
P95_LIMIT_MS = 1500.0  # a stream keeps up when its final events arrive within 1.5 s (p95) ...
LAG_LIMIT_S = 0.5  # ... and the paced source was never held back by more than this
NAIVE_STOP_MS = 5000.0  # the naive pipeline is not run at larger N once its p95 passes this
ASR_SETTINGS = [  # (window_s, beam_size, threads): the encoder-window lever, then threads, then the naive decode
    (30.0, 1, 2), (10.0, 1, 2), (6.0, 1, 2), (4.0, 1, 2), (10.0, 1, 1), (30.0, 5, 2),
]
QUICK_ASR_SETTINGS = [(30.0, 1, 2), (10.0, 1, 2)]
