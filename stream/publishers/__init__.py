"""Where events go: JSON Lines (stdout or a file), ZeroMQ PUB, MQTT."""

from __future__ import annotations

from typing import Protocol

from emostream.stream.errors import UserError
from emostream.stream.events import EmotionEvent


class Publisher(Protocol):
    name: str

    async def start(self) -> None:
        """Connects or binds; raises a UserError if that is impossible."""

    async def publish(self, event: EmotionEvent) -> None: ...

    async def close(self) -> None:
        """Delivers what is still pending; raises a UserError if events could not be delivered."""


async def close_all(started: list[Publisher]) -> None:
    """Closes every started publisher, each one even if another fails; then raises the first failure."""
    errors = []
    for p in started:
        try:
            await p.close()
        except UserError as e:
            errors.append(e)
    if errors:
        raise errors[0]
