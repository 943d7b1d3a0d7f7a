"""Word error rate of final transcripts against ground-truth turns, and percentiles."""

from __future__ import annotations

import re

import numpy as np


def normalise(text: str) -> str:
    """The same normalisation as the end-to-end tests (lower case, punctuation to spaces)."""
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " "))).strip()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs: total edits / total reference words, as jiwer computes it."""
    refs = [normalise(r).split() for r, _ in pairs]
    edits = sum(edit_distance(r, normalise(h).split()) for r, (_, h) in zip(refs, pairs, strict=True))
    return edits / max(1, sum(len(r) for r in refs))


def match(events: list[dict], turns: list[dict]) -> list[dict | None]:
    """For each turn, the final event that overlaps it most (None when none does), as tests/stream/cli_run.py."""
    out = []
    for t in turns:
        overlaps = [(min(t["end_s"], e["end_s"]) - max(t["start_s"], e["start_s"]), i) for i, e in enumerate(events)]
        best = max(overlaps, default=(0.0, -1))
        out.append(events[best[1]] if best[0] > 0 else None)
    return out


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None
