"""Cross-corpus scores: the restricted argmax, binary arousal and calibration error on hand-made predictions."""

from __future__ import annotations

import numpy as np

from emostream.models.labels import LABELS
from emostream.training.corpus_scores import corpus_scores, expected_calibration_error, headline


def test_restricted_argmax_and_arousal() -> None:
    i = LABELS.index
    y = np.array([i("anger"), i("sadness"), i("neutral"), i("joy")])
    probs = np.full((4, 7), 0.01)
    probs[0, i("surprise")], probs[0, i("anger")] = 0.6, 0.3  # surprise is not a class of this corpus
    probs[1, i("sadness")] = 0.9
    probs[2, i("anger")] = 0.9  # a wrong, high-arousal call
    probs[3, i("joy")] = 0.9
    classes = ("neutral", "joy", "anger", "sadness")
    r = corpus_scores(np.log(probs), y, LABELS, classes)
    h = headline(r)
    assert h["ua"] == 0.75 and h["ua_full"] == 0.5  # the restricted argmax turns item 0 into anger
    assert h["anger_recall"] == 1.0 and h["anger_precision"] == 0.5
    assert h["arousal"] == (1.0 + 0.5) / 2  # high: anger, joy right; low: sadness right, neutral wrong
    assert r["classes"] == list(classes)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, np.array([0, 1, 0, 1])) < 1e-9
    assert abs(expected_calibration_error(probs, np.array([1, 1, 1, 0])) - 0.75) < 1e-9
