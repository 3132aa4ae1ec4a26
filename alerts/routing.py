"""Routing, grouping and notification timing, with Alertmanager's semantics (pure logic: no I/O, the clock is
an argument, so every rule is unit-tested without sleeping).

* An alert goes to every route whose matchers it satisfies, in order, stopping at the first match unless the
  route says `continue: true`.
* Within a route, alerts with the same values of `group_by` form a group. A new group is flushed after
  `group_wait`; after that the group is looked at every `group_interval`.
* At a flush, silenced alerts are left out (a silence mutes, it never resolves), and a notification is made
  exactly when Alertmanager's notification log would make one (`dispatch/dedup` stage): the group was never
  notified and has firing alerts; or some firing alert was not in the last notification; or nothing fires any
  more but the last notification had firing alerts (the "all resolved" message); or, with `send_resolved`, an
  alert resolved since the last notification; or `repeat_interval` has passed since it. Re-sends of the same
  alert (same fingerprint, same status) change nothing, so Alertmanager's repeated webhooks are deduplicated.
* Resolved alerts leave the group once notified; an empty group is deleted.
* Quiet hours of a route hold its flushes until the quiet time ends (nothing is dropped).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import asdict, dataclass, field

from alerts.config import AlertsConfig, RouteConfig


def fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (for alerts that arrive without one)."""
    doc = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass
class Alert:
    fingerprint: str
    status: str                      # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None = None     # a firing alert whose ends_at has passed counts as resolved
    origin: str = "alertmanager"

    def resolved(self, now: float) -> bool:
        return self.status == "resolved" or (self.ends_at is not None and self.ends_at <= now)


@dataclass
class Group:
    id: str
    route: str
    labels: dict[str, str]
    created: float
    next_flush: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    last_notified: float | None = None
    notified_firing: list[str] = field(default_factory=list)
    notified_resolved: list[str] = field(default_factory=list)
    flushes: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Group":
        d = dict(d)
        d["alerts"] = {k: Alert(**a) for k, a in d.get("alerts", {}).items()}
        return cls(**d)


@dataclass
class Silence:
    id: str
    matchers: list[dict]             # [{"name", "value", "is_regex", "is_equal"}]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: dict[str, str]) -> bool:
        for m in self.matchers:
            v = labels.get(m["name"], "")
            hit = re.fullmatch(m["value"], v) is not None if m.get("is_regex") else v == m["value"]
            if hit != m.get("is_equal", True):
                return False
        return True


@dataclass
class Flush:
    """What a flush decided: the notification's alerts (None: nothing to send)."""
    group: Group
    firing: list[Alert]
    resolved: list[Alert]


class Router:
    """Holds the route list; all state lives in the `Group`s it is handed."""

    def __init__(self, cfg: AlertsConfig):
        self.cfg = cfg
        self.routes: dict[str, RouteConfig] = {(r.name or f"route-{i}"): r for i, r in enumerate(cfg.routes)}

    def matching(self, labels: dict[str, str]) -> list[str]:
        out = []
        for name, r in self.routes.items():
            if r.matches(labels):
                out.append(name)
                if not r.continue_:
                    break
        return out

    def group_of(self, route: str, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
        r = self.routes[route]
        glabels = {k: labels[k] for k in r.group_by if labels.get(k)}
        key = route + "{" + ",".join(f"{k}={v!r}" for k, v in sorted(glabels.items())) + "}"
        return hashlib.sha256(key.encode()).hexdigest()[:20], glabels

    def ingest(self, groups: dict[str, Group], alert: Alert, now: float) -> list[str]:
        """Put an alert into its groups; returns the ids of the groups that changed (a re-send changes none)."""
        changed = []
        for route in self.matching(alert.labels):
            gid, glabels = self.group_of(route, alert.labels)
            g = groups.get(gid)
            if g is None:
                if alert.resolved(now):
                    continue          # a resolve for an alert no group holds: nothing was ever notified
                g = groups[gid] = Group(gid, route, glabels, now,
                                        now + self.routes[route].group_wait.total_seconds())
            old = g.alerts.get(alert.fingerprint)
            if old == alert:
                continue
            if old is not None and old.status == alert.status and old.labels == alert.labels \
                    and old.annotations == alert.annotations and old.ends_at == alert.ends_at:
                continue
            g.alerts[alert.fingerprint] = alert
            changed.append(gid)
        return changed

    def inhibited(self, alert: Alert, sources: list[Alert]) -> bool:
        """Whether a firing alert among `sources` inhibits `alert` under `inhibit_rules` (never itself)."""
        return any(rule.inhibits(src.labels, alert.labels) for rule in self.cfg.inhibit_rules
                   for src in sources if src.fingerprint != alert.fingerprint)

    def flush(self, g: Group, now: float, silences: list[Silence], sources: list[Alert] | None = None) -> Flush | None:
        """Decide group `g`'s notification at `now` (its `next_flush` has come); updates `g`. `sources`: the
        firing alerts of every group, which may inhibit this group's alerts (a page mutes its SLO's ticket)."""
        r = self.routes.get(g.route)
        if r is None:                                       # the route was removed from the config
            g.alerts.clear()
            return None
        if r.quiet_hours is not None:
            until = r.quiet_hours.quiet_until(dt.datetime.fromtimestamp(now, dt.timezone.utc))
            if until is not None:
                g.next_flush = until.timestamp()
                return None
        g.next_flush = now + r.group_interval.total_seconds()
        live = [s for s in silences if s.active(now)]
        shown = {fp: a for fp, a in g.alerts.items() if not any(s.mutes(a.labels) for s in live)
                 and not (sources and not a.resolved(now) and self.inhibited(a, sources))}
        firing = {fp for fp, a in shown.items() if not a.resolved(now)}
        resolved = {fp for fp, a in shown.items() if a.resolved(now)}
        if not self._needs_update(g, firing, resolved, r, now):
            self._forget_resolved(g, now, notified=False)
            return None
        g.last_notified, g.flushes = now, g.flushes + 1
        g.notified_firing, g.notified_resolved = sorted(firing), sorted(resolved)
        out = Flush(g, [shown[fp] for fp in sorted(firing, key=lambda f: (shown[f].starts_at, f))],
                    [shown[fp] for fp in sorted(resolved, key=lambda f: (shown[f].starts_at, f))]
                    if r.send_resolved else [])
        self._forget_resolved(g, now, notified=True, shown=resolved)
        return out if (out.firing or out.resolved) else None

    @staticmethod
    def _needs_update(g: Group, firing: set[str], resolved: set[str], r: RouteConfig, now: float) -> bool:
        """Alertmanager's DedupStage.needsUpdate over the last notification of this group."""
        if g.last_notified is None:
            return bool(firing)
        if not firing <= set(g.notified_firing):
            return True
        if not firing:
            return bool(g.notified_firing)
        if r.send_resolved and not resolved <= set(g.notified_resolved):
            return True
        return g.last_notified <= now - r.repeat_interval.total_seconds()

    @staticmethod
    def _forget_resolved(g: Group, now: float, notified: bool, shown: set[str] | None = None) -> None:
        """Drop resolved alerts that are done with: notified ones, and ones the receiver never heard of."""
        for fp, a in list(g.alerts.items()):
            if a.resolved(now) and ((notified and fp in (shown or set())) or fp not in g.notified_firing):
                del g.alerts[fp]

    @staticmethod
    def due(groups: dict[str, Group], now: float) -> list[Group]:
        return sorted((g for g in groups.values() if g.next_flush <= now), key=lambda g: (g.next_flush, g.id))

    @staticmethod
    def next_wake(groups: dict[str, Group], default: float) -> float:
        return min((g.next_flush for g in groups.values()), default=default)

