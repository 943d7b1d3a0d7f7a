"""A terminal view of a live session, on stderr: rolling transcript, emotion per speaker, latency, input health.

It is a Publisher, so it sees exactly the events the buses see and costs the pipeline nothing else. It
redraws from the event loop, at most ``refresh_per_second`` times (a late change is drawn by a timer), and
never touches stdout, which carries the JSON Lines; rich's stdout redirection is off for that reason.
Without a terminal (stderr redirected) rich draws only the final state, when the view is closed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from typing import Any

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from emostream.stream.sources.microphone import CaptureStats

LABEL_STYLES = {
    "anger": "bold red",
    "disgust": "dark_orange",
    "fear": "magenta",
    "sadness": "blue",
    "surprise": "yellow",
    "joy": "green",
    "neutral": "white",
}
MAX_LATENCIES = 10_000  # p50/p95 over the session, bounded for day-long sessions
MAX_KNOWN_FINALS = 1_000  # utterances already final: their late estimates and partials are ignored


def _pct(values: deque[float], q: float) -> float:
    return float(np.percentile(np.fromiter(values, float, len(values)), q))


class LiveView:
    """Publisher that draws the session with ``rich.live.Live``; pass ``console`` to draw elsewhere (tests)."""

    name = "live"

    def __init__(
        self,
        stats: CaptureStats | None = None,
        console: Console | None = None,
        history: int = 8,
        refresh_per_second: float = 4.0,
    ) -> None:
        self.stats = stats
        self.console = console or Console(stderr=True)
        self.min_interval = 1.0 / refresh_per_second
        self.finals: deque[dict[str, Any]] = deque(maxlen=history)
        self.provisional: dict[tuple[str, str], dict[str, Any]] = {}
        self.partials: dict[str, dict[str, Any]] = {}  # stream_id -> latest partial
        self.speakers: dict[tuple[str, str], dict[str, Any]] = {}  # (stream_id, speaker) -> latest emotion
        self.latencies: deque[float] = deque(maxlen=MAX_LATENCIES)
        self.metrics: dict[str, Any] = {}
        self._final_keys: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._live: Live | None = None
        self._last_draw = -float("inf")
        self._timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._live = Live(
            self.render(),
            console=self.console,
            auto_refresh=False,  # no drawing thread: we draw from the loop, so state is never read mid-update
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    async def publish(self, event: Any) -> None:
        self.update(getattr(event, "to_dict", lambda: event)())
        self._request_draw()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()  # draws the final state (also when stderr is not a terminal)
            self._live = None

    # ------------------------------------------------------------------------------------------ state

    def update(self, e: dict[str, Any]) -> None:
        """Folds one event into the view's state; unknown types are ignored."""
        kind = e.get("type")
        key = (str(e.get("stream_id", "")), str(e.get("utterance_id", "")))
        if kind == "emotion":
            self._final_keys[key] = None
            if len(self._final_keys) > MAX_KNOWN_FINALS:
                self._final_keys.popitem(last=False)
            self.provisional.pop(key, None)
            partial = self.partials.get(key[0])
            if partial is not None and partial.get("utterance_id") == key[1]:
                del self.partials[key[0]]
            self.finals.append(e)
            self.speakers[(key[0], str(e.get("speaker", "")))] = {**e, "provisional": False}
            e2e = (e.get("latency_ms") or {}).get("end_to_end")
            if e2e is not None:
                self.latencies.append(float(e2e))
        elif kind == "emotion_estimate":
            if key in self._final_keys:
                return
            self.provisional[key] = e
            self.speakers[(key[0], str(e.get("speaker", "")))] = {**e, "provisional": True}
        elif kind == "partial":
            if key not in self._final_keys:
                self.partials[key[0]] = e
        elif kind == "metrics":
            keys = ("real_time_factor", "dropped_partials", "input_overruns")
            self.metrics.update({k: e[k] for k in keys if k in e})

    # ------------------------------------------------------------------------------------------ drawing

    def _request_draw(self) -> None:
        if self._live is None:
            return
        wait = self._last_draw + self.min_interval - time.monotonic()
        if wait <= 0:
            self._draw()
        elif self._timer is None:  # one pending redraw covers every change until then
            self._timer = asyncio.get_running_loop().call_later(wait, self._draw)

    def _draw(self) -> None:
        self._timer = None
        self._last_draw = time.monotonic()
        if self._live is not None:
            self._live.update(self.render(), refresh=True)

    def render(self) -> RenderableType:
        """The whole view as one rich renderable (cheap: a few small tables)."""
        return Group(self._status_line(), self._speaker_table(), self._transcript_table())

    def _who(self, stream_id: str, speaker: str) -> str:
        streams = {s for s, _ in self.speakers} | {str(e.get("stream_id", "")) for e in self.finals}
        return speaker if len(streams) <= 1 else f"{stream_id}/{speaker}"

    def _status_line(self) -> Text:
        t = Text("emo-stream ", style="bold")
        if self.latencies:
            last = self.latencies[-1]
            t.append(f"latency {last:.0f} ms")
            t.append(
                f" (p50 {_pct(self.latencies, 50):.0f} ms, p95 {_pct(self.latencies, 95):.0f} ms, "
                f"n={len(self.latencies)})",
                style="dim",
            )
        else:
            t.append("latency -", style="dim")
        health: list[tuple[str, str]] = []
        if "real_time_factor" in self.metrics:
            health.append((f"RTF {float(self.metrics['real_time_factor']):.2f}", ""))
        if "dropped_partials" in self.metrics:
            health.append((f"dropped partials {self.metrics['dropped_partials']}", ""))
        if self.stats is not None:
            bad = self.stats.overruns or self.stats.dropped_frames
            health.append((f"input overruns {self.stats.overruns}, dropped frames {self.stats.dropped_frames}",
                           "bold red" if bad else ""))
        elif "input_overruns" in self.metrics:
            health.append((f"input overruns {self.metrics['input_overruns']}", ""))
        for i, (part, style) in enumerate(health):
            t.append("\n" if i == 0 else " | ")
            t.append(part, style=style)
        return t

    def _speaker_table(self) -> Table:
        table = Table(title="emotion per speaker", title_justify="left", expand=False, show_edge=False)
        for col in ("speaker", "emotion", "conf", "valence", "arousal"):
            table.add_column(col, justify="right" if col in ("conf", "valence", "arousal") else "left")
        for (stream_id, speaker), e in self.speakers.items():
            label = Text(str(e.get("label", "?")), style=LABEL_STYLES.get(str(e.get("label")), ""))
            if e["provisional"]:
                label.append(" (audio only)", style="dim")
            table.add_row(
                self._who(stream_id, speaker),
                label,
                f"{float(e.get('confidence', 0.0)):.2f}",
                f"{float(e.get('valence', 0.0)):+.2f}",
                f"{float(e.get('arousal', 0.0)):+.2f}",
            )
        return table

    def _transcript_table(self) -> Table:
        table = Table(title="transcript", title_justify="left", expand=True, show_edge=False)
        table.add_column("time", justify="right", no_wrap=True)
        table.add_column("speaker", no_wrap=True)
        table.add_column("emotion", no_wrap=True)
        table.add_column("text", ratio=1)
        for e in self.finals:
            table.add_row(
                f"{float(e.get('start_s', 0.0)):.1f}s",
                self._who(str(e.get("stream_id", "")), str(e.get("speaker", ""))),
                Text(f"{e.get('label', '?')} {float(e.get('confidence', 0.0)):.2f}",
                     style=LABEL_STYLES.get(str(e.get("label")), "")),
                str(e.get("transcript", "")),
            )
        for e in self.provisional.values():
            table.add_row(
                f"{float(e.get('start_s', 0.0)):.1f}s",
                self._who(str(e.get("stream_id", "")), str(e.get("speaker", ""))),
                Text(f"{e.get('label', '?')}? {float(e.get('confidence', 0.0)):.2f}", style="dim"),
                Text("(transcribing…)", style="dim italic"),
                style="dim",
            )
        for stream_id, p in self.partials.items():
            committed = str(p.get("committed", "") or "")
            tentative = str(p.get("tentative", "") or "")
            text = Text(committed, style="italic")
            if tentative:
                text.append((" " if committed else "") + tentative, style="dim italic")
            if not committed and not tentative:
                text = Text(str(p.get("text", "")), style="italic")
            table.add_row("", self._who(stream_id, str(p.get("speaker", ""))), Text("…", style="dim"), text)
        return table
