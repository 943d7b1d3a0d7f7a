"""JSON Lines on stdout or appended to a file: one event per line, flushed per event."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from emostream.stream.errors import UserError
from emostream.stream.events import EmotionEvent


class JsonLinesPublisher:
    def __init__(self, path: Path | None) -> None:
        self.name = f"jsonl:{path}" if path else "stdout"
        self.path = path
        self._out: TextIO = sys.stdout

    async def start(self) -> None:
        if self.path is not None:
            try:
                self._out = self.path.open("a", encoding="utf-8")
            except OSError as e:
                raise UserError(
                    f"{self.path}: cannot open for writing events ({e.strerror}); pick another --jsonl path"
                ) from None

    async def publish(self, event: EmotionEvent) -> None:
        self._out.write(event.to_json() + "\n")
        self._out.flush()

    async def close(self) -> None:
        if self.path is not None:
            self._out.close()
