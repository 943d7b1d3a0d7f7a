"""Supervisor alerts: the config's ``alerts.rules`` applied to each call's final emotion events, as they come.

Plugged into a stream as one more publisher (it sees every event of its stream); an alert it raises goes out
through ``emit`` to the stream's publishers, on the topic ``<prefix>/<stream>/alert``. Rules look at utterances
only (never at partials or estimates), per speaker, and their cooldown runs on call time (``end_s``), so that the
same call gives the same alerts however fast it is processed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from emostream.stream.config import MEASURES, AlertRule
from emostream.stream.errors import UserError
from emostream.stream.events import AlertEvent, EmotionEvent, Event
from emostream.stream.observe.metrics import PrometheusExporter

log = logging.getLogger(__name__)


def check_rules(rules: Sequence[AlertRule], labels: Sequence[str]) -> None:
    """A rule whose measure the loaded model cannot produce is a start-up error, not a rule that never fires."""
    for r in rules:
        if r.measure not in (*MEASURES, *labels):
            raise UserError(f"alerts.rules[{r.name}].measure: {r.measure!r} is neither valence, arousal nor a label "
                            f"of the model ({', '.join(labels)})")


def measure(rule: AlertRule, event: EmotionEvent) -> float:
    if rule.measure == "valence":
        return event.valence
    if rule.measure == "arousal":
        return event.arousal
    return event.scores.get(rule.measure, 0.0)


def compare(rule: AlertRule, value: float) -> bool:
    return value >= rule.threshold if rule.op == ">=" else value <= rule.threshold


def slope(points: list[tuple[str, float, bool, float]]) -> float:
    """Least-squares slope of the values against their end times (per second); 0 when the times coincide."""
    t = [p[3] for p in points]
    v = [p[1] for p in points]
    t_mean, v_mean = sum(t) / len(t), sum(v) / len(v)
    spread = sum((x - t_mean) ** 2 for x in t)
    return sum((x - t_mean) * (y - v_mean) for x, y in zip(t, v, strict=True)) / spread if spread else 0.0


class AlertEngine:
    def __init__(self, stream_id: str, rules: Sequence[AlertRule], emit: Callable[[AlertEvent], Awaitable[object]],
                 prometheus: PrometheusExporter | None = None) -> None:
        self.name = f"alerts:{stream_id}"
        self.stream_id, self.rules, self.emit, self.prometheus = stream_id, tuple(rules), emit, prometheus
        # (rule, speaker) → its last `window` utterances: (utterance id, value, matched, end_s)
        self.recent: dict[tuple[str, str], deque[tuple[str, float, bool, float]]] = {}
        self.last_fired: dict[tuple[str, str], float] = {}
        self.raised: list[AlertEvent] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, event: Event) -> None:
        if not isinstance(event, EmotionEvent):
            return
        for rule in self.rules:
            if rule.speaker and rule.speaker != event.speaker:
                continue
            key = (rule.name, event.speaker)
            value = measure(rule, event)
            if rule.span_s:
                history = self.recent.setdefault(key, deque())
                history.append((event.utterance_id, value, True, event.end_s))
                while history and history[0][3] < event.end_s - rule.span_s:
                    history.popleft()
                hits = list(history)
                matched = len(hits) >= rule.count and compare(rule, slope(hits))
            else:
                matched = compare(rule, value)
                history = self.recent.setdefault(key, deque(maxlen=rule.window))
                history.append((event.utterance_id, value, matched, event.end_s))
                hits = [h for h in history if h[2]]
            if not matched or len(hits) < rule.count:
                continue
            last = self.last_fired.get(key)
            if last is not None and event.end_s - last < rule.cooldown_s:
                continue
            self.last_fired[key] = event.end_s
            await self._raise(rule, event, hits)

    async def _raise(self, rule: AlertRule, event: EmotionEvent, hits: list[tuple[str, float, bool, float]]) -> None:
        alert = AlertEvent(
            stream_id=self.stream_id, alert_id=f"{self.stream_id}-alert-{len(self.raised) + 1}", rule=rule.name,
            severity=rule.severity, speaker=event.speaker, channel=event.channel,
            utterance_ids=[h[0] for h in hits], values=[round(h[1], 4) for h in hits], at_s=event.end_s,
            message=(f"{event.speaker}: {rule.measure} {rule.op} {rule.threshold} on {len(hits)} of the last "
                     f"{rule.window} utterances") if not rule.span_s else
                    (f"{event.speaker}: {rule.measure} trend {slope(hits):+.4f}/s over {rule.span_s:g} s "
                     f"({len(hits)} utterances) {rule.op} {rule.threshold}"),
        )
        self.raised.append(alert)
        if self.prometheus is not None:
            self.prometheus.alerts.labels(self.stream_id, rule.name, rule.severity).inc()
        log.info("%s: alert %s (%s): %s", self.stream_id, rule.name, rule.severity, alert.message)
        await self.emit(alert)
