"""Running the real ``emo-stream`` CLI in a subprocess, and scoring its events against a dialogue's ground truth."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

import jiwer

from tests.support.dialogues import Turn


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_cli(*args: str, prefix: tuple[str, ...] = (), timeout: float = 600) -> CliResult:
    cmd = [*prefix, sys.executable, "-m", "emostream.stream.cli", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return CliResult(p.returncode, p.stdout, p.stderr)


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [e for e in events if e["type"] == event_type]


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " "))).strip()


def match(events: list[dict], turns: list[Turn]) -> list[tuple[Turn, dict | None]]:
    """Each ground-truth turn with the event that overlaps it most (None if no event overlaps it)."""
    pairs = []
    for t in turns:
        overlaps = [(min(t.end_s, e["end_s"]) - max(t.start_s, e["start_s"]), i) for i, e in enumerate(events)]
        best = max(overlaps, default=(0.0, -1))
        pairs.append((t, events[best[1]] if best[0] > 0 else None))
    return pairs


def word_error_rate(pairs: list[tuple[Turn, dict | None]]) -> float:
    refs = [normalise(t.text) for t, _ in pairs]
    hyps = [normalise(e["transcript"]) if e else "" for _, e in pairs]
    return jiwer.wer(refs, hyps)

