"""Every call of the cluster as ``GET /v1/streams`` and the dashboard see them, kept by the watcher (one replica on
the head) from the ingress replicas' reports (``report.py``): each replica's live calls with their summaries so far,
the final summaries of ended calls, and the events of all of them for the dashboard's feed."""

from __future__ import annotations

from dataclasses import dataclass

from emostream.stream.events import Event, SummaryEvent
from emostream.stream.observe.dashboard import DashboardFeed
from emostream.stream.server.calls import EndedCalls


@dataclass(frozen=True)
class Report:
    """What one ingress replica tells the watcher: the events its calls published since its last report, in order,
    and each of its live calls' summary as of now."""

    replica: str  # the replica's actor name, by which the watcher checks it is alive
    events: tuple[Event, ...]
    live: dict[str, SummaryEvent]


class CallBoard:
    """The ``CallView`` of ``server/app.py`` for the whole cluster, so the single-process handlers' bodies serve it."""

    def __init__(self, keep_s: float) -> None:
        self.feed = DashboardFeed()
        self.ended = EndedCalls(keep_s)
        self.replicas: dict[str, dict[str, SummaryEvent]] = {}  # replica → its live calls' summaries; none: absent

    @property
    def live(self) -> dict[str, SummaryEvent]:
        return {sid: s for calls in self.replicas.values() for sid, s in calls.items()}

    async def update(self, report: Report) -> None:
        for event in report.events:
            await self.feed.publish(event)
            if isinstance(event, SummaryEvent) and event.final:
                self.ended.add(event)
        if report.live:
            self.replicas[report.replica] = report.live
        else:
            self.replicas.pop(report.replica, None)

    def lost(self, replica: str) -> list[str]:
        """Forgets a dead replica; the ids of the calls it held."""
        return sorted(self.replicas.pop(replica, {}))

    def summary(self, stream_id: str) -> SummaryEvent | None:
        live = self.live
        return live[stream_id] if stream_id in live else self.ended.get(stream_id)
