"""Scores of a corpus that the model may not have seen: what a new user's recordings would get.

A left-out corpus has only some of the seven classes (EmoDB no surprise, nEMO no disgust), so recall is reported
with the argmax restricted to the corpus's classes (the fair figure) and over all seven (what the stream would
publish). Anger comes first among the per-class figures because a missed angry caller is the costly error. Binary
arousal asks the question most robust across corpora: is the speaker activated (anger, joy, fear, surprise) or not
(neutral, sadness)? Disgust is left out of it, as its arousal is ambiguous. ECE (expected calibration error, 15
bins of top-class confidence) says whether the published confidence can be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from emostream.training.metrics import scores

HIGH_AROUSAL = ("anger", "joy", "fear", "surprise")
LOW_AROUSAL = ("neutral", "sadness")
ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(float((pred[inside] == y[inside]).mean()) - float(conf[inside].mean()))
    return float(ece)


def arousal_recall(probs: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> float | None:
    """Mean recall of high vs low arousal over the utterances of either group (None if a group is absent)."""
    high = [labels.index(c) for c in HIGH_AROUSAL]
    low = [labels.index(c) for c in LOW_AROUSAL]
    keep = np.isin(y, high + low)
    truth = np.isin(y[keep], high)
    if truth.all() or not truth.any():
        return None
    said = probs[keep][:, high].sum(1) > probs[keep][:, low].sum(1)
    return float((said[truth].mean() + (~said[~truth]).mean()) / 2)


def corpus_scores(log_probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...],
                  classes: Sequence[str]) -> dict[str, Any]:
    """Restricted scores (``scores`` of the argmax over ``classes``) plus full-argmax UA, arousal and ECE."""
    probs = np.exp(log_probs - log_probs.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    inside = np.array([c in classes for c in labels])
    restricted = np.where(inside, log_probs, -np.inf).argmax(1)
    full = scores(y, log_probs.argmax(1), labels)
    return {**scores(y, restricted, labels), "classes": list(classes),
            "unweighted_recall_full": full["unweighted_recall"], "arousal_recall": arousal_recall(probs, y, labels),
            "ece": expected_calibration_error(probs, y)}


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the cross-corpus table shows, anger first."""
    anger = result["per_class"]["anger"]
    return {"n": result["n"], "ua": result["unweighted_recall"], "ua_full": result["unweighted_recall_full"],
            "weighted_f1": result["weighted_f1"], "anger_recall": anger["recall"],
            "anger_precision": anger["precision"], "arousal": result["arousal_recall"], "ece": result["ece"]}
