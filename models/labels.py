"""The unified 7-class label set and the mappings from each corpus onto it."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")

# RAVDESS emotion codes (third field of the file name). Calm has no class of its own: it is neutral.
RAVDESS_CODES: dict[str, str] = {
    "01": "neutral",
    "02": "neutral",
    "03": "joy",
    "04": "sadness",
    "05": "anger",
    "06": "fear",
    "07": "disgust",
    "08": "surprise",
}

# MELD already uses the unified names.
MELD_LABELS: dict[str, str] = {label: label for label in LABELS}

# Valence/arousal anchors per class (circumplex model, Russell 1980), used to give robot stacks a
# continuous reading: the expectation of these under the predicted distribution.
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "joy": (0.8, 0.5),
    "surprise": (0.2, 0.8),
    "anger": (-0.6, 0.8),
    "sadness": (-0.7, -0.4),
    "disgust": (-0.7, 0.3),
    "fear": (-0.6, 0.6),
}


def label_index(label: str, labels: tuple[str, ...] = LABELS) -> int:
    """Index of ``label`` in ``labels``, with an error that lists the known names."""
    try:
        return labels.index(label)
    except ValueError:
        raise ValueError(f"unknown emotion label {label!r}; expected one of {', '.join(labels)}") from None
