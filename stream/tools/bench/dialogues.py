"""The dialogues the bench replays: the bundled example and, where the shared data and tools are there, RAVDESS
and espeak-ng dialogues built by the test helpers."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Dialogue:
    """An audio file and its ground-truth turns (``start_s``, ``end_s``, ``text``), as plain JSON for workers."""

    name: str
    path: str
    duration_s: float
    turns: list[dict[str, Any]]


def repo_root() -> Path:
    """The checkout holding ``examples/`` (the bench needs the example dialogue and its ground truth)."""
    for candidate in (Path(__file__).resolve().parents[3], Path.cwd()):
        if (candidate / "examples" / "call_center.json").is_file():
            return candidate
    raise SystemExit("emo-bench: run it from an emo-stream checkout (examples/call_center.json not found)")


def example_dialogue(root: Path) -> Dialogue:
    meta = json.loads((root / "examples" / "call_center.json").read_text())
    turns = [{"start_s": t["start_s"], "end_s": t["end_s"], "text": t["text"]} for t in meta["turns"]]
    return Dialogue("call_center", str(root / "examples" / meta["audio"]), meta["duration_s"], turns)


def shortened(d: Dialogue, turns: int, workdir: Path) -> Dialogue:
    """The first ``turns`` turns of a dialogue (for ``--quick``), cut 0.5 s after the last one ends."""
    import soundfile as sf

    audio, sr = sf.read(d.path, dtype="float32", always_2d=True)
    end_s = d.turns[turns - 1]["end_s"] + 0.5
    path = workdir / f"{d.name}_short.wav"
    sf.write(path, audio[: int(end_s * sr)], sr, subtype="PCM_16")
    return Dialogue(f"{d.name}_short", str(path), end_s, d.turns[:turns])


def real_dialogues(root: Path, workdir: Path) -> list[Dialogue]:
    """RAVDESS and espeak-ng dialogues from the test helpers, when the shared data and tools are there.

    They add real (acted, non-synthetic) voices to the WER; without them only the bundled example is used.
    """
    data = Path(os.environ.get("EMO_STREAM_DATA", root.parent / "shared" / "data"))
    if not (data / "ravdess" / "Actor_24").is_dir() or not shutil.which("sox") or not shutil.which("espeak-ng"):
        return []
    if str(root) not in sys.path:
        sys.path.append(str(root))  # tests.support lives in the checkout, not in the installed package
    try:
        from tests.support import dialogues as dlg
    except ImportError:
        return []
    out = []
    for build in (dlg.ravdess_dialogue, dlg.mixed_dialogue):
        d = build(workdir)
        turns = [{"start_s": t.start_s, "end_s": t.end_s, "text": t.text} for t in d.turns]
        out.append(Dialogue(d.path.stem, str(d.path), d.duration_s, turns))
    return out
