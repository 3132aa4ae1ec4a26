"""The direct path: the evaluator's own SLO alert conditions go straight into the durable inbox and routing.

Before, revwatch's evaluation notified nobody: an alert went out to Prometheus (rules over /metrics), through
Alertmanager and back to the receiver — 10–24 s from crossing to page. Here each evaluator pass hands its alert
conditions (slo/conditions.py: one per SLO, group and severity, labelled as the generated rule labels it) to
`DirectAlerts.feed`, which applies Prometheus' hysteresis and submits transitions to `AlertService.submit` (origin
`evaluator`); grouping, dedup, silences, inhibition (a page mutes its SLO's ticket), resolve notifications,
impact and delivery are the ones every other alert gets.

Hysteresis, per alert (Prometheus' rule states):
* inactive → pending when the condition becomes active; pending → firing once it has been active for `hold_for`
  (the tiers' `alert_after`, `for:`), at once when that is zero; pending → inactive when it stops before then;
* firing → resolved once the condition has been inactive for `alerts.direct.keep_firing_for` (`keep_firing_for`).
Only transitions are submitted (a re-send would change nothing in routing anyway). Once the inbox has them they
are also written to the per-SLO alert history (alerts/history.py) with the tiers as evaluated at that pass.

Restarts: the firing alerts of this path are in the persisted routing groups; `feed` adopts them on its first
call, so a condition that cleared while revwatch was down is resolved by the first pass. A pending `for:` timer
starts again (as in Prometheus without ALERTS_FOR_STATE restore).

Never twice: while this path is enabled the Alertmanager receiver leaves alerts named like these (alertname and
slo of a revwatch-evaluated SLO, `slo.conditions.identities`) out of routing — the Prometheus rules may still
exist for dashboards and for other Alertmanager receivers.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from alerts import history
from alerts.config import DirectConfig
from alerts.routing import Alert, fingerprint

if TYPE_CHECKING:
    from alerts.service import AlertService

log = logging.getLogger("revwatch.alerts.direct")
ORIGIN = "evaluator"


class ConditionLike(Protocol):
    """What the evaluator hands over (slo.conditions.Condition; the alerts package does not import slo)."""
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def annotations(self) -> dict[str, str]: ...
    @property
    def active(self) -> bool: ...
    @property
    def hold_for(self) -> dt.timedelta: ...
    @property
    def at(self) -> dt.datetime: ...
    @property
    def tiers(self) -> tuple[dict, ...]: ...


@dataclass
class _State:
    pending_since: float | None = None       # first pass of the current active streak
    firing_since: float | None = None        # None: not firing
    last_active: float = 0.0


class DirectAlerts:
    """Hysteresis and submission of the evaluator's SLO alerts; one instance per evaluating server."""

    def __init__(self, service: AlertService, cfg: DirectConfig):
        self.service, self.cfg = service, cfg
        self.states: dict[str, _State] = {}
        self._adopted = False
        self._lock = threading.Lock()

    def _adopt(self) -> None:
        """Take over the firing alerts of this path from the persisted routing groups (after a restart)."""
        with self.service._state_lock:
            firing = {fp: a for g in self.service.groups.values() for fp, a in g.alerts.items()
                      if a.origin == ORIGIN and a.status == "firing" and a.ends_at is None}
        for fp, a in firing.items():
            self.states.setdefault(fp, _State(a.starts_at, a.starts_at, a.starts_at))
        self._adopted = True

    def feed(self, conditions: Iterable[ConditionLike]) -> list[Alert]:
        """Apply one evaluation's conditions; submits (durably) and returns the alerts that changed state."""
        if not self.cfg.enabled:
            return []
        with self._lock:
            if not self._adopted:
                self._adopt()
            out: list[Alert] = []
            seen: set[str] = set()
            tiers: dict[str, tuple[dict, ...]] = {}
            for c in conditions:
                fp = fingerprint(c.labels)
                seen.add(fp)
                tiers[fp] = c.tiers
                now = c.at.timestamp()
                st = self.states.setdefault(fp, _State())
                if c.active:
                    st.last_active = now
                    if st.pending_since is None:
                        st.pending_since = now
                    if st.firing_since is None and now - st.pending_since >= c.hold_for.total_seconds():
                        st.firing_since = now
                        out.append(Alert(fp, "firing", dict(c.labels), dict(c.annotations), now, None, ORIGIN))
                    continue
                st.pending_since = None
                if st.firing_since is not None and now - st.last_active >= self.cfg.keep_firing_for.total_seconds():
                    out.append(Alert(fp, "resolved", dict(c.labels), dict(c.annotations), st.firing_since, now,
                                     ORIGIN))
                    st.firing_since = None
                if st.firing_since is None:
                    del self.states[fp]
            # an alert whose SLO (or group) is gone from the evaluation resolves
            for fp in [f for f, st in self.states.items() if f not in seen and st.firing_since is not None]:
                alert = self._held(fp)
                if alert is not None:
                    out.append(alert)
                del self.states[fp]
            for fp in [f for f in self.states if f not in seen]:
                del self.states[fp]
        if out:
            try:
                self.service.submit(out)
            except Exception:
                self._undo(out)
                raise
            history.record(self.service.store, out, tiers, self.service.clock())
        return out

    def _held(self, fp: str) -> Alert | None:
        """A resolve for a firing alert of this path that no condition names any more."""
        with self.service._state_lock:
            for g in self.service.groups.values():
                a = g.alerts.get(fp)
                if a is not None and a.origin == ORIGIN:
                    now = dt.datetime.now(dt.timezone.utc).timestamp()
                    return Alert(fp, "resolved", dict(a.labels), dict(a.annotations), a.starts_at, now, ORIGIN)
        return None

    def _undo(self, alerts: list[Alert]) -> None:
        """The inbox refused: forget the transitions so the next pass decides (and submits) them again."""
        with self._lock:
            for a in alerts:
                st = self.states.setdefault(a.fingerprint, _State())
                if a.status == "firing":
                    st.firing_since = None
                else:
                    st.firing_since, st.last_active = a.starts_at, a.ends_at or a.starts_at
        log.warning("direct SLO alerts: the inbox refused %d transition(s); retried next pass", len(alerts))

    def firing(self) -> list[str]:
        """Fingerprints currently firing on this path (tests, introspection)."""
        with self._lock:
            return [fp for fp, st in self.states.items() if st.firing_since is not None]
