"""GoEmotions loader: the Ekman-grouped release (``ekman/{train,dev,test}.tsv``: text, comma-separated label ids
in the order of ``ekman/labels.txt``, comment id), whose seven groups are the unified classes one to one.

Multi-label rule: a comment whose labels fall into more than one Ekman group (about 9 % of each split) is left out
of every split, training and scoring alike, because a single-label classifier has no right answer for it; the
rest keep their one label. Comments are single Reddit posts, so each is its own dialogue with no context.
"""

from __future__ import annotations

import csv
from pathlib import Path

from emostream.models.labels import LABELS
from emostream.training.data.meld import clean_text
from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

SPLITS = ("train", "dev", "test")


def load_goemotions(data_dir: Path, split: str) -> list[Utterance]:
    """Single-label comments of one official split, in file order."""
    if split not in SPLITS:
        raise ValueError(f"GoEmotions split {split!r} does not exist; use one of {', '.join(SPLITS)}")
    root = require_dir(data_dir / "goemotions" / "ekman", "GoEmotions data (goemotions/ekman/*.tsv, labels.txt)")
    names = (root / "labels.txt").read_text(encoding="utf-8").split()
    if unknown := [n for n in names if n not in LABELS]:
        raise ValueError(f"{root / 'labels.txt'}: label(s) {unknown} are not unified classes ({', '.join(LABELS)})")
    path = root / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"GoEmotions {split} split not found: {path} is missing")
    out: list[Utterance] = []
    with path.open(encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if len(row) != 3:
                raise ValueError(f"{path}:{line}: expected text, label ids and comment id, got {len(row)} fields")
            text, ids, comment = row
            try:
                groups = {names[int(i)] for i in ids.split(",")}
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{line}: label ids {ids!r} are not ids of {root / 'labels.txt'}") from None
            if len(groups) != 1:
                continue
            out.append(Utterance(audio=None, text=clean_text(text), label=groups.pop(), speaker=f"reddit-{comment}",
                                 dialogue=f"goemotions-{split}-{comment}", turn=0, corpus="goemotions"))
    return out
