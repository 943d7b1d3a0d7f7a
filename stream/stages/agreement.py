"""LocalAgreement-2 (Macháček et al., whisper_streaming): commit the words two successive hypotheses agree on.

Whisper revises the end of a hypothesis as more audio arrives; a word that two decodes in a row
agree on, in the same position after what is already committed, rarely changes again. Committed
words are never taken back, so a partial transcript only grows at its committed end.
"""

from __future__ import annotations

import re


def words(text: str) -> list[str]:
    return text.split()


def _key(word: str) -> str:
    """Case and punctuation do not make two hypotheses disagree."""
    return re.sub(r"[^\w']", "", word.lower())


class LocalAgreement:
    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    def update(self, hypothesis: list[str]) -> tuple[list[str], list[str]]:
        """Feeds one hypothesis of the whole utterance so far; returns (committed, tentative) words."""
        n = len(self.committed)
        if [_key(w) for w in hypothesis[:n]] != [_key(w) for w in self.committed]:
            # The decode no longer starts with what was committed (Whisper re-segmented): keep the
            # commitment and treat the rest of this hypothesis as tentative from where it diverges.
            self._previous = hypothesis
            return list(self.committed), []
        agree = n
        for a, b in zip(self._previous[n:], hypothesis[n:], strict=False):
            if _key(a) != _key(b):
                break
            agree += 1
        self.committed += hypothesis[n:agree]
        self._previous = hypothesis
        return list(self.committed), hypothesis[agree:]
