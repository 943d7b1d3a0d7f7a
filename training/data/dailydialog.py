"""DailyDialog loader (the English part kept in XDailyDialog): one dialogue per line, utterances split by
``__eou__``, and a matching line of label ids (0 no emotion → neutral, 1 anger, 2 disgust, 3 fear, 4 happiness,
5 sadness, 6 surprise).

No official split ships with this part, so one is fixed here by dialogue line number: line % 10 == 8 is dev,
== 9 is test, the rest train. Dialogues whose label count differs from their utterance count (62 in the release)
are skipped. Speakers alternate A/B, as the corpus is two-party.
"""

from __future__ import annotations

from pathlib import Path

from emostream.training.data.meld import clean_text
from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

DAILYDIALOG_LABELS: tuple[str, ...] = ("neutral", "anger", "disgust", "fear", "joy", "sadness", "surprise")
SPLITS = ("train", "dev", "test")


def split_of(line: int) -> str:
    return {8: "dev", 9: "test"}.get(line % 10, "train")


def load_dailydialog(data_dir: Path, split: str) -> list[Utterance]:
    if split not in SPLITS:
        raise ValueError(f"DailyDialog split {split!r} does not exist; use one of {', '.join(SPLITS)}")
    root = require_dir(data_dir / "dailydialog", "DailyDialog data (dailydialog/dialogues_{text,emotion}.txt)")
    texts = (root / "dialogues_text.txt").read_text(encoding="utf-8").splitlines()
    emotions = (root / "dialogues_emotion.txt").read_text(encoding="utf-8").splitlines()
    if len(texts) != len(emotions):
        raise ValueError(f"{root}: dialogues_text.txt has {len(texts)} lines but dialogues_emotion.txt "
                         f"{len(emotions)}; they must match line for line")
    out: list[Utterance] = []
    for line, (text, ids) in enumerate(zip(texts, emotions, strict=True)):
        if split_of(line) != split:
            continue
        turns = [t for t in (clean_text(t) for t in text.split("__eou__")) if t]
        labels = ids.split()
        if len(turns) != len(labels):
            continue
        for turn, (utt, label) in enumerate(zip(turns, labels, strict=True)):
            if not label.isdigit() or int(label) >= len(DAILYDIALOG_LABELS):
                raise ValueError(f"{root / 'dialogues_emotion.txt'}:{line + 1}: unknown label id {label!r}")
            out.append(Utterance(audio=None, text=utt, label=DAILYDIALOG_LABELS[int(label)], speaker="AB"[turn % 2],
                                 dialogue=f"dailydialog-{line}", turn=turn, corpus="dailydialog"))
    return out
