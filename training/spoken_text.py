"""Text read aloud by a synthetic voice (espeak-ng): audio that no emotion corpus sounds like, with words that say
what the label is. It is how a voice out of the model's domain meets clear words, on dev data (the README's example
call is made the same way): fusion must then follow the words, not the voice's hesitant guess.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from emostream.training.data.records import Utterance

VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3")  # four voices, assigned by text, so speakers vary


def spoken(utts: Sequence[Utterance], folder: Path) -> list[Path]:
    """A WAV of each utterance's text (cached by text and voice), in order."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng): it reads the texts aloud")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for u in utts:
        digest = hashlib.sha256(u.text.encode()).hexdigest()[:16]
        voice = VOICES[int(digest, 16) % len(VOICES)]
        path = folder / f"{digest}-{voice.replace('+', '_')}.wav"
        if not path.is_file():  # the text on stdin: a comment may start with "-", which would read as an option
            subprocess.run([espeak, "-v", voice, "-s", "160", "-w", str(path), "--stdin"], input=u.text.encode(),
                           check=True, capture_output=True, timeout=60)
            if not path.is_file():
                raise RuntimeError(f"espeak-ng wrote no audio for {u.dialogue} ({u.text!r})")
        out.append(path)
    return out


def speaker_of(path: Path) -> str:
    return "espeak-" + path.stem.split("-", 1)[1]
