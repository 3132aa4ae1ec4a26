"""The one status rule of a journey instance and the one overdue-threshold policy (docs/journeys.md).

Every reader — the lookup (`GET /api/v1/journeys/{id}`), the stuck list (`?stuck=`), the web UI, the CLI,
attribution and alert enrichment — asks `Policy` and nothing else, so an instance can never be `in_progress` in
one place and overdue in another.

Threshold of a journey: its own `threshold`, else the tightest threshold of the journey SLOs on it, else
`DEFAULT_THRESHOLD` (1 h). Status of an instance as of `now`:

* `not_started` — a step of the journey was seen but not its start (no instance, see revwatch.journeys.sql);
* `completed`   — the end was reached (`within_threshold` tells whether in time);
* `expired`     — unfinished and started before `now - lookback` (7 days): no longer tracked as stuck, so the
                  stuck list, its money and the lookup agree; the lookup still shows its timeline;
* `overdue`     — unfinished, started within the lookback, and `now - start > threshold`;
* `in_progress` — unfinished and within its threshold.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from revwatch.config import JourneyConfig

DEFAULT_THRESHOLD = dt.timedelta(hours=1)      # overdue threshold of a journey that names none and has no SLO
STUCK_LOOKBACK = dt.timedelta(days=7)          # unfinished instances older than this are `expired`, not stuck
STATUSES = ("not_started", "in_progress", "overdue", "expired", "completed")
AGING: tuple[tuple[dt.timedelta | None, str], ...] = (
    (dt.timedelta(hours=1), "< 1 h"), (dt.timedelta(hours=4), "1–4 h"), (dt.timedelta(hours=24), "4–24 h"),
    (dt.timedelta(days=3), "1–3 d"), (None, "> 3 d"))
AGING_LABELS = tuple(label for _, label in AGING)


def thresholds(journeys: Mapping[str, JourneyConfig],
               slo_thresholds: Iterable[tuple[str, dt.timedelta]]) -> dict[str, dt.timedelta]:
    """Per journey, the configured overdue threshold: the journey's own, else the tightest SLO threshold on it
    (journeys with neither are absent: `Policy.threshold` gives them DEFAULT_THRESHOLD).

    `slo_thresholds` is (journey, threshold) of every journey SLO (slo.spec resolves them from the config)."""
    out: dict[str, dt.timedelta] = {}
    for journey, t in slo_thresholds:
        out[journey] = min(t, out.get(journey, t))
    out.update({name: j.threshold for name, j in journeys.items() if j.threshold})
    return out


def aging_bucket(age: dt.timedelta) -> str:
    """The aging bucket label of an instance that started `age` ago."""
    return next(label for limit, label in AGING if limit is None or age < limit)


@dataclass(frozen=True)
class Policy:
    """Thresholds per journey (from `thresholds`) and the stuck lookback: the status rule's only inputs."""
    overdue: Mapping[str, dt.timedelta] = field(default_factory=dict)
    lookback: dt.timedelta = STUCK_LOOKBACK

    def threshold(self, journey: str) -> dt.timedelta:
        return self.overdue.get(journey) or DEFAULT_THRESHOLD

    def status(self, journey: str, start_at: dt.datetime | None, end_at: dt.datetime | None,
               now: dt.datetime) -> str:
        """The status of one instance as of `now` (see the module docstring)."""
        if start_at is None:
            return "not_started"
        if end_at is not None:
            return "completed"
        if start_at < now - self.lookback:
            return "expired"
        return "overdue" if now - start_at > self.threshold(journey) else "in_progress"
