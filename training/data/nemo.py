"""nEMO loader (Polish acted speech): ``data.tsv`` as published, audio in ``samples/<file_id stem>.ogg``.

Speakers come from the ``speaker_id`` column (padded with spaces in the release, so stripped); the transcript is the
``raw_text`` column (Polish: the packaged text encoder is English, so training uses nEMO for the audio branch only).
"""

from __future__ import annotations

import csv
from pathlib import Path

from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

NEMO_LABELS: dict[str, str] = {"anger": "anger", "fear": "fear", "happiness": "joy", "neutral": "neutral",
                               "sadness": "sadness", "surprised": "surprise"}
REQUIRED_COLUMNS = ("file_id", "emotion", "raw_text", "speaker_id")


def load_nemo(data_dir: Path) -> list[Utterance]:
    """Every clip of ``data_dir/nemo``, in ``data.tsv`` order; a row naming a missing clip is an error."""
    root = require_dir(data_dir / "nemo", "nEMO data (nemo/data.tsv and nemo/samples/*.ogg)")
    table = root / "data.tsv"
    if not table.is_file():
        raise FileNotFoundError(f"nEMO table not found: {table} is missing")
    out: list[Utterance] = []
    with table.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if missing := [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]:
            raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            emotion = row["emotion"].strip()
            if emotion not in NEMO_LABELS:
                raise ValueError(f"{table}:{line}: unknown nEMO emotion {emotion!r}; "
                                 f"expected one of {', '.join(NEMO_LABELS)}")
            audio = root / "samples" / f"{Path(row['file_id'].strip()).stem}.ogg"
            if not audio.is_file():
                raise FileNotFoundError(f"{table}:{line}: clip {audio} is missing")
            out.append(Utterance(audio=audio, text=row["raw_text"].strip(), label=NEMO_LABELS[emotion],
                                 speaker=f"nemo-{row['speaker_id'].strip()}", dialogue=f"nemo-{audio.stem}", turn=0,
                                 corpus="nemo", language="pl"))
    return out
