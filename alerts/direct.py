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
are also written to the per-SLO alert history (alerts/history.py) with the tiers as evaluated at that pass; a
history row the store refuses is retried at the next pass, and the first pass backfills the history from the inbox.

Restarts: the inbox holds every transition this path submitted, durably, before anything else happens to it; `feed`
adopts, on its first call, the alerts whose latest transition there is "firing" (`AlertService.evaluator_firing`,
which also reads the persisted routing groups) with their original start. So a condition still firing keeps its
one incident (no second page, no second "firing" history row), and one that cleared while revwatch was down is
resolved by the first pass. Adoption reads the inbox, not only the routing groups: a transition submitted just
before a stop may not have reached the groups yet, and the groups may not be loaded yet when the first pass comes
(the store was down at start) — adopting from them alone paged twice. Until adoption succeeds no transition is
decided (the pass fails and the next one tries again). A pending `for:` timer starts again (as in Prometheus
without ALERTS_FOR_STATE restore).

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
from revwatch.store import StoreError

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
    labels: dict[str, str] | None = None     # as last submitted or seen: a resolve needs them when the SLO is gone
    annotations: dict[str, str] | None = None


class DirectAlerts:
    """Hysteresis and submission of the evaluator's SLO alerts; one instance per evaluating server."""

    def __init__(self, service: AlertService, cfg: DirectConfig, metrics=None):
        self.service, self.cfg = service, cfg
        self.states: dict[str, _State] = {}
        self.history = history.HistoryLog(service.store, cfg.history_retention, service.clock, metrics)
        self._adopted = False
        self._backfilled = False
        self._lock = threading.Lock()

    def _adopt(self) -> None:
        """Take over the firing alerts of this path (after a restart): those whose latest transition in the inbox
        is "firing", with their original start. Raises StoreError when the store cannot say (tried next pass)."""
        for a in self.service.evaluator_firing():
            self.states.setdefault(a.fingerprint, _State(a.starts_at, a.starts_at, a.starts_at, dict(a.labels),
                                                         dict(a.annotations)))
        self._adopted = True

    def _history_upkeep(self) -> None:
        """Each pass: retry pending history rows; the first pass after a start also backfills from the inbox."""
        self.history.flush()
        if not self._backfilled:
            try:
                self.history.backfill()
                self._backfilled = True
            except Exception as e:          # never in the way of a page
                log.warning("SLO alert history backfill failed (tried again next pass): %s", e,
                            exc_info=not isinstance(e, StoreError))

    def feed(self, conditions: Iterable[ConditionLike]) -> list[Alert]:
        """Apply one evaluation's conditions; submits (durably) and returns the alerts that changed state."""
        if not self.cfg.enabled:
            return []
        with self._lock:
            if not self._adopted:
                self._adopt()
            self._history_upkeep()
            out: list[Alert] = []
            seen: set[str] = set()
            tiers: dict[str, tuple[dict, ...]] = {}
            for c in conditions:
                fp = fingerprint(c.labels)
                seen.add(fp)
                tiers[fp] = c.tiers
                now = c.at.timestamp()
                st = self.states.setdefault(fp, _State())
                st.labels, st.annotations = dict(c.labels), dict(c.annotations)
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
                out.append(self._held(fp, self.states[fp]))
                del self.states[fp]
            for fp in [f for f in self.states if f not in seen]:
                del self.states[fp]
        if out:
            try:
                self.service.submit(out)
            except Exception:
                self._undo(out)
                raise
            self.history.record(out, tiers, self.service.clock())
        return out

    def _held(self, fp: str, st: _State) -> Alert:
        """A resolve for a firing alert of this path that no condition names any more (its SLO or group is gone)."""
        assert st.firing_since is not None
        return Alert(fp, "resolved", dict(st.labels or {}), dict(st.annotations or {}), st.firing_since,
                     self.service.clock(), ORIGIN)

    def _undo(self, alerts: list[Alert]) -> None:
        """The inbox refused: forget the transitions so the next pass decides (and submits) them again."""
        with self._lock:
            for a in alerts:
                st = self.states.setdefault(a.fingerprint, _State())
                st.labels, st.annotations = dict(a.labels), dict(a.annotations)
                if a.status == "firing":
                    st.firing_since = None
                else:
                    st.firing_since, st.last_active = a.starts_at, a.ends_at or a.starts_at
        log.warning("direct SLO alerts: the inbox refused %d transition(s); retried next pass", len(alerts))

    def firing(self) -> list[str]:
        """Fingerprints currently firing on this path (tests, introspection)."""
        with self._lock:
            return [fp for fp, st in self.states.items() if st.firing_since is not None]
