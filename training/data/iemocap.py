"""IEMOCAP loader: the standard release layout.

    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt     "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5, 2.5, 2.5]"
    Session1/dialog/transcriptions/Ses01F_impro01.txt    "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav

Labels (consensus category of EmoEvaluation) map onto the unified set as ``IEMOCAP_LABELS``: excited is merged
into joy (the usual 4-class practice); frustration, "other" and no-agreement (xxx) have no unified class and
are left out. Speaker = session + the utterance's gender letter (``Ses01_F``: one actor per session and sex),
so speaker-independent splits hold whole actors out. Dialogues and turns come from the file names and the
start times, so the text context is the real conversation.
"""

from __future__ import annotations

import re
from pathlib import Path

from emostream.training.data.records import Utterance
from emostream.training.paths import require_dir

IEMOCAP_LABELS: dict[str, str | None] = {
    "neu": "neutral", "hap": "joy", "exc": "joy", "sur": "surprise", "ang": "anger", "sad": "sadness",
    "dis": "disgust", "fea": "fear", "fru": None, "oth": None, "xxx": None,
}
_EVAL_LINE = re.compile(r"^\[(?P<start>[\d.]+) - (?P<end>[\d.]+)\]\t(?P<utt>\S+)\t(?P<label>\w+)\t")
_TRANSCRIPT_LINE = re.compile(r"^(?P<utt>Ses\S+) \[[^\]]*\]:\s*(?P<text>.*)$")


def _transcripts(session: Path, dialog: str) -> dict[str, str]:
    path = session / "dialog" / "transcriptions" / f"{dialog}.txt"
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if m := _TRANSCRIPT_LINE.match(line.strip()):
            out[m["utt"]] = " ".join(m["text"].split())
    return out


def speaker_of(utterance_id: str) -> str:
    """``Ses01F_impro01_M003`` → ``Ses01_M`` (the male actor of session 1)."""
    return f"{utterance_id[:5]}_{utterance_id.rsplit('_', 1)[1][0]}"


def load_iemocap(root: Path, sessions: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[Utterance]:
    """Utterances with a unified label and a WAV file, ordered by dialogue and start time."""
    root = require_dir(root, "IEMOCAP data (Session1..5 with dialog/EmoEvaluation and sentences/wav)")
    out: list[Utterance] = []
    for n in sessions:
        session = root / f"Session{n}"
        evaluations = sorted((session / "dialog" / "EmoEvaluation").glob("*.txt"))
        for ev in evaluations:
            dialog = ev.stem
            texts = _transcripts(session, dialog)
            rows = []
            for line in ev.read_text(encoding="utf-8", errors="replace").splitlines():
                if not (m := _EVAL_LINE.match(line)):
                    continue
                code = m["label"].lower()
                if code not in IEMOCAP_LABELS:
                    raise ValueError(f"{ev}: unknown IEMOCAP category {m['label']!r} for {m['utt']}")
                label = IEMOCAP_LABELS[code]
                wav = session / "sentences" / "wav" / dialog / f"{m['utt']}.wav"
                if label is None or not wav.is_file():
                    continue
                rows.append((float(m["start"]), m["utt"], label, wav))
            for turn, (_, utt, label, wav) in enumerate(sorted(rows)):
                out.append(Utterance(audio=wav, text=texts.get(utt, ""), label=label, speaker=speaker_of(utt),
                                     dialogue=f"iemocap-{dialog}", turn=turn, corpus="iemocap"))
    if not out:
        raise FileNotFoundError(f"no labelled IEMOCAP utterances under {root} (expected Session1..5/dialog/"
                                "EmoEvaluation/*.txt and Session*/sentences/wav/<dialog>/<utterance>.wav)")
    return out
