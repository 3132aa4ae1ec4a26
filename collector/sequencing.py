"""Event sequencing (docs/sources.md "Sequencing"): each journey declares its milestone order (`start`,
`milestones`, `end`); an event that arrives after a later milestone of the same journey instance already arrived
(a `payment.posted` before its `payment.settled`) is counted per source and journey, as is one whose occurred_at
is earlier than the later milestone's (the event's clock or meaning disagrees with the declared order).

Counted at ingest on the event loop from a bounded memory of recent instances (`max_keys`, two generations as
the intake's duplicate memory), so its cost does not grow with the store; re-deliveries (event ids the intake
already holds) are not arrivals and are skipped. Per collector process: with several collectors, each counts the
orders it saw. Readers never see a negative latency from this: the SLO decision of an instance is at the later of
its start and end (slo/sli.py).
"""
from __future__ import annotations

from collections.abc import Mapping

from collector.events import COL_CORRELATION, COL_EVENT_ID, COL_OCCURRED, COL_TYPE
from collector.intake import RecentKeys
from revwatch.config import JourneyConfig
from revwatch.metrics import Metrics


class Sequencer:
    """Counts out-of-order milestone arrivals per source and journey (`revwatch_source_out_of_order_total`)."""

    def __init__(self, journeys: Mapping[str, JourneyConfig], metrics: Metrics, max_keys: int = 200_000):
        self.metrics = metrics
        self.positions: dict[str, list[tuple[str, int]]] = {}
        for name, j in journeys.items():
            for pos, typ in enumerate([j.start, *j.milestones, j.end]):
                self.positions.setdefault(typ, []).append((name, pos))
        self.seen = RecentKeys(max_keys)            # (journey, correlation ID) → (highest position, its occurred)

    def observe(self, rows: list[list], source: str, known=None) -> int:
        """Note the arrival of validated event rows; returns how many arrived out of the declared order. `known`
        (an event-id container) marks re-deliveries to skip."""
        if not self.positions:
            return 0
        late = 0
        for row in rows:
            places = self.positions.get(row[COL_TYPE])
            if not places or (known is not None and row[COL_EVENT_ID] in known):
                continue
            cid, occurred = row[COL_CORRELATION], row[COL_OCCURRED]
            for journey, pos in places:
                key = (journey, cid)
                hi = self.seen.get(key)
                if hi is not None and hi[0] > pos:
                    late += 1
                    self.metrics.source_out_of_order_total.labels(source, journey, "arrival").inc()
                    if occurred > hi[1]:
                        self.metrics.source_out_of_order_total.labels(source, journey, "occurred").inc()
                elif hi is None or pos > hi[0]:
                    self.seen.add(key, (pos, occurred))
        return late
