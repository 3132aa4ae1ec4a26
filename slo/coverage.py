"""Coverage: how much of each window had data. Time without data is unknown, never good (docs/slo-policy.md).

A minute *has data* for an SLO (and group) when at least one event or sample was decided in it (its rollup row has
Total > 0 after budget adjustments are applied, slo/adjustments.py). Per window:

    coverage = minutes with data / (minutes of the window − minutes excluded by adjustments)

Invariants:
* `Coverage.no_data` is True when the SLO window has no minute with data, or when the last minute with data is
  `no_data_after` or more before the evaluated minute (default: the long window of the fastest page tier, else 1 h).
  The one state function (the SLO document's `state`) turns it into `no_data` unless an alert is firing or held.
* An alert tier (burn-rate pair or exhaustion) whose long or short window has no data neither fires nor resolves:
  each tier keeps the state it had at the last minute its own windows had data (`hold_minute`: the SLO's last
  minute with data + the tier's shorter window − 1 minute), and says so (`held: true`, `held_from`). That state is
  recomputed from the data (an evaluation as of that minute), so a restart, another server or an as-of read hold
  the same way, and the generated Prometheus rules hold each tier the same way (slo/rules.py).
* Journeys that should always flow (`journeys.X.no_data_alert: 30m`) alert when none of their event types occurred
  for that long (`journey_silence`, from `ingest_log`, the per-minute record of which event types got data).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from revwatch.config import JourneyConfig
from revwatch.store import Store
from revwatch.units import format_duration, parse_duration
from slo.ownership import Ownership, resolve as resolve_ownership

MINUTE = dt.timedelta(minutes=1)
DEFAULT_NO_DATA_AFTER = dt.timedelta(hours=1)


@dataclass(frozen=True)
class WindowCoverage:
    """One window's minutes: all of them, those excluded by adjustments, those with data."""
    minutes: int                       # whole minutes of the window
    covered: int                       # minutes with data (after adjustments)
    excluded: int = 0                  # minutes removed by `effect: exclude` adjustments
    counted_good: int = 0              # minutes whose events count as good (`effect: good` adjustments)

    @property
    def counted(self) -> int:
        return max(self.minutes - self.excluded, 0)

    @property
    def ratio(self) -> float | None:
        """minutes with data / counted minutes; None when every minute is excluded."""
        return min(self.covered / self.counted, 1.0) if self.counted else None

    def as_dict(self) -> dict:
        return {"minutes": self.minutes, "excluded_minutes": self.excluded, "counted_minutes": self.counted,
                "covered_minutes": self.covered, "counted_good_minutes": self.counted_good, "ratio": self.ratio}


@dataclass(frozen=True)
class Coverage:
    windows: dict[str, WindowCoverage]
    last_data: dt.datetime | None      # start of the latest minute with data in the SLO window (None: none)
    at_minute: dt.datetime             # the evaluated minute
    no_data_after: dt.timedelta
    held: list[str] = field(default_factory=list)   # alert tiers holding their last state ("page 1h/5m", ...)

    @property
    def silent_for(self) -> dt.timedelta | None:
        """How long no minute had data (0 when the evaluated minute has data); None: never in the SLO window."""
        return None if self.last_data is None else self.at_minute - self.last_data

    @property
    def no_data(self) -> bool:
        silent = self.silent_for
        return silent is None or silent >= self.no_data_after

    def as_dict(self) -> dict:
        silent = self.silent_for
        return {"no_data": self.no_data, "last_data": self.last_data.isoformat() if self.last_data else None,
                "no_data_for_minutes": None if silent is None else int(silent / MINUTE),
                "no_data_after": format_duration(self.no_data_after), "held_alerts": list(self.held),
                "windows": {w: c.as_dict() for w, c in self.windows.items()}}


def no_data_after(spec) -> dt.timedelta:
    """The SLO's `no_data_after`, else the long window of its fastest page tier, else 1 h."""
    if spec.config.no_data_after is not None:
        return spec.config.no_data_after
    pages = spec.tiers_of("page")
    return min(t.long for t in pages) if pages else DEFAULT_NO_DATA_AFTER


def window_minutes(bounds: Mapping[str, dt.datetime], end: dt.datetime) -> dict[str, int]:
    """Whole minutes of each window [start, end)."""
    return {w: max(int((end - start) / MINUTE), 0) for w, start in bounds.items()}


def tier_has_data(entry: dict, windows: Mapping) -> bool:
    """Both windows of an alert tier have at least one decided event (or minute)."""
    return windows[entry["long"]].total > 0 and windows[entry["short"]].total > 0


def tier_key(entry: dict) -> tuple:
    """What names one alert tier across evaluations: severity, kind, windows (and an exhaustion tier's `within`)."""
    return entry["severity"], entry.get("kind", "burn_rate"), entry["long"], entry["short"], entry.get("within")


def hold_minute(entry: dict, last_data: dt.datetime, at_minute: dt.datetime) -> dt.datetime:
    """The last minute at whose end the tier still had data in both its windows: its shorter window still reaches
    back to `last_data` (the SLO's last minute with data) until last_data + shorter window − 1 minute. Each tier
    holds the state it had then (a Prometheus rule that keeps a tier's last state while its windows are empty holds
    the same one: slo/rules.py), never an older one it had already left with data."""
    span = min(parse_duration(entry["long"]), parse_duration(entry["short"]))
    return min(last_data + span - MINUTE, at_minute - MINUTE)


def held_tiers(alerts: list[dict], windows: Mapping, last_data: dt.datetime | None,
               at_minute: dt.datetime) -> dict[tuple, dt.datetime]:
    """Per tier without data, the minute whose state it holds (`hold_minute`); none when there was never data."""
    if last_data is None or last_data >= at_minute:
        return {}
    return {tier_key(a): hold_minute(a, last_data, at_minute) for a in alerts if not tier_has_data(a, windows)}


def hold_alerts(alerts: list[dict], windows: Mapping, previous: list[dict] | None,
                last_data: dt.datetime | None, at_minute: dt.datetime) -> list[str]:
    """Alert tiers without data keep the firing state they had at the end of their `hold_minute` (`previous`: each
    tier as evaluated then; a tier missing there, or no data ever: not firing). Marks them `held` with `held_from`
    (that minute); returns their names."""
    held = []
    before = {tier_key(a): a["firing"] for a in previous or []}
    for a in alerts:
        if tier_has_data(a, windows):
            a["held"] = False
            continue
        a["firing"] = before.get(tier_key(a), False)
        a["held"] = True
        a["held_from"] = hold_minute(a, last_data, at_minute).isoformat() if last_data else None
        held.append(f"{a['severity']} {a['long']}/{a['short']}" if a.get("kind") != "exhaustion"
                    else f"{a['severity']} exhaustion {a['long']}")
    return held


@dataclass(frozen=True)
class JourneySilence:
    """A journey that should always flow: when one of its event types last occurred, and whether that is too long
    ago (`no_data_alert`)."""
    journey: str
    last_event: dt.datetime | None
    after: dt.timedelta
    at: dt.datetime
    severity: str = "ticket"
    ownership: Ownership = Ownership()

    @property
    def silent_for(self) -> dt.timedelta | None:
        return None if self.last_event is None else max(self.at - self.last_event, dt.timedelta(0))

    @property
    def alerting(self) -> bool:
        s = self.silent_for
        return s is None or s >= self.after

    def as_dict(self) -> dict:
        s = self.silent_for
        return {"journey": self.journey, "last_event": self.last_event.isoformat() if self.last_event else None,
                "no_data_for_minutes": None if s is None else int(s / MINUTE),
                "no_data_alert": format_duration(self.after), "alerting": self.alerting, "severity": self.severity,
                **self.ownership.as_dict()}


def journey_silence(store: Store, journeys: Mapping[str, JourneyConfig], at: dt.datetime) -> dict[str, JourneySilence]:
    """Per journey with `no_data_alert`, the latest minute (≤ `at`) in which one of its event types occurred, looked
    up to 35 days back in `ingest_log` (its retention); one query for all journeys."""
    watched = {n: j for n, j in journeys.items() if j.no_data_alert is not None}
    if not watched:
        return {}
    types = sorted({t for j in watched.values() for t in (j.start, j.end, *j.milestones)})
    rows = store.query(
        f"SELECT Key, max(Minute) FROM {store.table('ingest_log')} "
        f"WHERE Kind = 'event' AND Key IN {{types:Array(String)}}"
        f" AND Minute <= fromUnixTimestamp64Milli({{at:Int64}}, 'UTC')"
        f" AND IngestedAt >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') GROUP BY Key",
        {"types": types, "at": int(at.timestamp() * 1000),
         "since": int((at - parse_duration("35d")).timestamp() * 1000)}).rows
    last = {k: m.replace(tzinfo=dt.timezone.utc) for k, m in rows}
    out = {}
    for name, j in watched.items():
        seen = [last[t] for t in (j.start, j.end, *j.milestones) if t in last]
        assert j.no_data_alert is not None, "filtered above"
        # the minute an event occurred in counts whole: silence is measured from the end of that minute
        out[name] = JourneySilence(name, max(seen) + MINUTE if seen else None, j.no_data_alert, at,
                                   j.no_data_severity, resolve_ownership(j))
    return out
