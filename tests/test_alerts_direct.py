"""The direct path (alerts/direct.py): the evaluator's own SLO alert states go straight into the inbox and routing.

Hysteresis against hand-made condition sequences; then a live app whose evaluator loop pages real HTTP sinks from
stored spans, with the ticket inhibited by the page of the same SLO, the Alertmanager copy of the same alert not
routed (never two pages), the resolve, and the evaluation lag exported."""
from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest

from alerts.config import DirectConfig
from alerts.direct import ORIGIN, DirectAlerts
from alerts.routing import Alert, Group, fingerprint
from revwatch.store import QueryResult
from slo.conditions import Condition
from tests.support.servers import live_server
from tests.support.sinks import Sink
from tests.support.slo_data import add_span_list, odoo_error_ratio_config
from tests.support.waits import until

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc)
LABELS = {"alertname": "RevwatchSLOBurnRatePage", "slo": "api", "journey": "", "severity": "page"}


class HistoryRows:
    """Stands in for the store the alert history (alerts/history.py) is written to (its backfill finds nothing)."""

    def __init__(self):
        self.rows: list[tuple] = []

    def insert(self, table, rows, columns):
        assert table == "slo_alert_history"
        self.rows += rows

    def table(self, name):
        return name

    def query(self, sql, params=None):
        return QueryResult([], [])


class Inbox:
    """Stands in for AlertService: what `submit` got, and the persisted groups `feed` adopts at start."""

    def __init__(self):
        self.store = HistoryRows()
        self.clock = time.time
        self.groups: dict[str, Group] = {}
        self._state_lock = threading.RLock()
        self.got: list[Alert] = []

    def submit(self, alerts):
        self.got.extend(alerts)
        return len(alerts)

    def evaluator_firing(self):
        """As AlertService's: the latest transition per fingerprint (here what was submitted), else the groups."""
        latest = {a.fingerprint: a for a in self.got if a.origin == ORIGIN}
        return [a for a in latest.values() if a.status == "firing"] + \
            [a for g in self.groups.values() for fp, a in g.alerts.items()
             if fp not in latest and a.origin == ORIGIN and a.status == "firing"]


def run(direct: DirectAlerts, inbox: Inbox, steps: list[tuple[float, bool]], hold: float = 0) -> list[tuple]:
    """Feed (seconds after T0, active) conditions; returns (second, status) of every submitted transition."""
    out = []
    for sec, active in steps:
        before = len(inbox.got)
        direct.feed([Condition(LABELS, {"summary": "s"}, active, dt.timedelta(seconds=hold),
                               T0 + dt.timedelta(seconds=sec))])
        out += [(sec, a.status) for a in inbox.got[before:]]
    return out


def test_for_holds_the_page_until_the_condition_has_lasted():
    inbox = Inbox()
    d = DirectAlerts(inbox, DirectConfig())
    steps = [(0, True), (5, True), (8, False), (9, True), (15, True), (19, True), (20, True), (25, False)]
    # pending from 0, reset at 8, pending again from 9: fires at 19 (10 s), resolves at the first inactive pass
    assert run(d, inbox, steps, hold=10) == [(19, "firing"), (25, "resolved")]
    assert inbox.got[0].origin == ORIGIN and inbox.got[0].fingerprint == fingerprint(LABELS)
    assert inbox.got[1].starts_at == inbox.got[0].starts_at and inbox.got[1].ends_at == (T0.timestamp() + 25)


def test_keep_firing_for_rides_out_short_gaps_and_zero_flaps():
    inbox = Inbox()
    d = DirectAlerts(inbox, DirectConfig(keep_firing_for=dt.timedelta(seconds=5)))
    steps = [(0, True), (2, False), (4, False), (6, True), (8, False), (12, False), (13, False), (14, True)]
    assert run(d, inbox, steps) == [(0, "firing"), (12, "resolved"), (14, "firing")]   # 12 − 6 ≥ 5
    inbox2 = Inbox()
    d2 = DirectAlerts(inbox2, DirectConfig())
    assert run(d2, inbox2, [(s, True) for s in range(0, 300, 2)]) == [(0, "firing")]   # constant: one page


def test_a_restart_adopts_firing_alerts_and_resolves_what_cleared_meanwhile():
    inbox = Inbox()
    fp = fingerprint(LABELS)
    g = Group("g1", "route-0", {"slo": "api"}, 0.0, 0.0)
    g.alerts[fp] = Alert(fp, "firing", dict(LABELS), {}, T0.timestamp() - 600, None, ORIGIN)
    g.alerts["am"] = Alert("am", "firing", {"slo": "x"}, {}, 0.0, None, "alertmanager")
    inbox.groups["g1"] = g
    d = DirectAlerts(inbox, DirectConfig())
    assert run(d, inbox, [(0, False)]) == [(0, "resolved")]
    assert inbox.got[0].starts_at == T0.timestamp() - 600
    # a firing alert whose SLO is gone from the evaluation resolves too
    inbox2 = Inbox()
    inbox2.groups["g1"] = g
    d2 = DirectAlerts(inbox2, DirectConfig())
    d2.feed([])
    assert [(a.fingerprint, a.status) for a in inbox2.got] == [(fp, "resolved")]


def test_a_refused_inbox_write_is_decided_again_next_pass():
    class Refusing(Inbox):
        fail = True

        def submit(self, alerts):
            if self.fail:
                raise RuntimeError("store down")
            return super().submit(alerts)
    inbox = Refusing()
    d = DirectAlerts(inbox, DirectConfig())
    with pytest.raises(RuntimeError):
        run(d, inbox, [(0, True)])
    inbox.fail = False
    assert run(d, inbox, [(2, True)]) == [(2, "firing")]


DELIVERY = """
evaluator: {{enabled: true, interval: 500ms}}
server: {{metrics_public: true}}
alerts:
  public_url: http://revwatch.test
  notifiers:
    pd: {{type: pagerduty, url: "{base}/pd", routing_key: K}}
    hook: {{type: webhook, url: "{base}/hook"}}
  routes:
    - {{notifiers: [pd, hook], group_by: [alertname, slo, group], group_wait: 0s, group_interval: 1s}}
  delivery: {{backoff_initial: 100ms, backoff_max: 400ms, tick: 50ms}}
"""


def spans_now(n: int, bad_every: int, seconds_ago: float) -> list[tuple[int, bool]]:
    base = int((time.time() - seconds_ago) * 1e9)
    return [(base + k * 1000, bad_every > 0 and k % bad_every == 0) for k in range(n)]


def test_the_evaluator_pages_directly_inhibits_the_ticket_never_twice_and_resolves(api_factory):
    sink = Sink()
    with live_server(sink.app) as base:
        api = api_factory(odoo_error_ratio_config(page_burn=10) + DELIVERY.format(base=base))
        assert api.ctx.evaluator is not None and api.ctx.evaluator.passes >= 0
        t0 = time.time()
        add_span_list(api.ctx.store, spans_now(100, 2, 10))          # 50 % errors: page (≥ 10) and ticket (≥ 2)
        [pd] = sink.wait("pd", 1, timeout=30)
        paged = time.time() - t0
        assert pd["event_action"] == "trigger" and pd["dedup_key"] == "revwatch/slo/api//page"
        hook = sink.wait("hook", 1)[0]
        assert hook["alerts"][0]["origin"] == ORIGIN and hook["alerts"][0]["labels"]["alertname"] == \
            "RevwatchSLOBurnRatePage"
        assert "50.0x" in hook["alerts"][0]["annotations"]["description"]
        # the ticket of the same SLO fires too, but the page inhibits it
        fired = {tuple(sorted(a["firing"] for a in r.alerts)) for r in api.ctx.slo.latest or []}
        assert fired == {(True, True)}
        # Alertmanager's copy of the same page (from the generated rule): stored nowhere, routed never
        am = {"version": "4", "status": "firing", "alerts": [{
            "status": "firing", "labels": {**LABELS, "instance": "rw:8317", "job": "revwatch"},
            "annotations": {"summary": "burning"}, "startsAt": "2026-11-23T10:00:00Z", "fingerprint": "amfp"}]}
        r = api.post("/api/v1/alerts/alertmanager", json=am)
        assert r.json() == {"received": 0, "superseded": 1}
        until(api.ctx.alerts.settled, 10, "the alert pipeline settled")   # the copy never reached the inbox
        assert api.ctx.store.query(f"SELECT count() FROM {api.ctx.store.table('alert_inbox')} "
                                   "WHERE Origin = 'alertmanager'").scalar() == 0
        assert [e["event_action"] for e in sink.got["pd"]] == ["trigger"], sink.got["pd"]
        metrics = api.client.get("/metrics").text
        assert "revwatch_alerts_superseded_total 1.0" in metrics
        lag = float(next(line.split()[-1] for line in metrics.splitlines()
                         if line.startswith("revwatch_slo_evaluation_lag_seconds ")))
        assert 0 <= lag < 10
        # the burn falls back (the errors are diluted by good spans): resolved, the ticket never notified. This must
        # come before the burst (10 s old) leaves the page's 1m window by itself: the page would resolve on its own
        # while the ticket's 5m/1h windows still burn, and the ticket, no longer inhibited, would rightly notify
        t1 = time.time()
        assert t1 - t0 < 45, f"{t1 - t0:.0f} s after the burst: too late to dilute it inside the 1m window"
        good = spans_now(30_000, 0, 5)
        for k in range(0, len(good), 5000):
            add_span_list(api.ctx.store, good[k:k + 5000])
        resolve = sink.wait("pd", 2, timeout=30)[1]
        resolved = time.time() - t1
        assert resolve == {"routing_key": "K", "event_action": "resolve", "dedup_key": pd["dedup_key"]}
        direct = api.ctx.evaluator.direct
        until(lambda: not direct.firing() and api.ctx.alerts.settled(), 10, "page and ticket resolved, delivered")
        assert all("ticket" not in e["dedup_key"] for e in sink.got["pd"]), sink.got["pd"]
        print(f"\nstored burn → page {paged:.1f}s, dilution → resolve {resolved:.1f}s")
        r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui/"}, follow_redirects=False)
        assert r.status_code in (302, 303), r.text
        html = api.client.get("/ui/").text
        shown = re.search(r"evaluation lag ([0-9.]+) s", html)       # the overview shows the same lag
        assert shown and 0 <= float(shown.group(1)) < 10, html[:2000]


class Recorder:
    """An engine whose passes take `seconds` of a simulated clock and record when they started."""

    def __init__(self, now: list[float], seconds: float):
        self.now, self.seconds, self.starts, self.summaries = now, seconds, [], []

    def evaluate_and_cache(self, summaries=True):
        self.starts.append(self.now[0])
        self.summaries.append(summaries)
        self.now[0] += self.seconds
        return []


def drive(loop, now: list[float], until: float) -> None:
    """Run the evaluator loop's body on the simulated clock `now` up to `until` (what its thread does, without
    waiting: each wait it asks for passes on the clock at once)."""
    while now[0] < until:
        wait = loop.step()                     # a pass moves the clock itself (Recorder)
        now[0] += wait


def test_the_evaluator_loop_never_skips_a_slow_pass_and_wakes_early_on_new_data():
    from revwatch.evaluator import EvaluatorLoop
    now = [1000.0]
    slow = Recorder(now, 0.3)
    loop = EvaluatorLoop(slow, None, 0.1, "", clock=lambda: now[0])  # passes longer than the interval
    drive(loop, now, 1001.65)
    gaps = [round(b - a, 9) for a, b in zip(slow.starts, slow.starts[1:])]
    assert len(slow.starts) == 6 and gaps == [0.3] * 5, gaps            # back to back, none dropped
    assert slow.summaries == [True, False, False, False, False, False]   # journey summaries: every 30 s only
    assert loop.passes == 6 and loop.lag() == pytest.approx(now[0] - slow.starts[-1])
    # new data moves the next pass forward to half an interval; without data it waits the whole interval
    now[0], version = 2000.0, [0]
    quick = Recorder(now, 0.0)
    loop = EvaluatorLoop(quick, None, 1.0, "", clock=lambda: now[0], data_version=lambda: version[0])
    drive(loop, now, 2000.2)
    version[0] += 1
    drive(loop, now, 2000.8)
    early = quick.starts[1] - quick.starts[0]
    assert len(quick.starts) == 2 and 0.5 - 1e-9 <= early <= 0.6 + 1e-9, quick.starts   # the loop looks every 0.1 s
    drive(loop, now, quick.starts[1] + 1.2)
    assert len(quick.starts) == 3 and 1.0 - 1e-9 <= quick.starts[2] - quick.starts[1] <= 1.01 + 1e-9, quick.starts


def test_the_evaluator_thread_runs_the_same_body():
    """The thread only repeats `step` and waits what it says (the schedule itself is tested above, on a clock)."""
    from revwatch.evaluator import EvaluatorLoop
    ran = threading.Event()

    class Once:
        def evaluate_and_cache(self, summaries=True):
            ran.set()
            return []
    loop = EvaluatorLoop(Once(), None, 60.0, "")
    loop.start()
    try:
        assert ran.wait(10)                                            # the first pass runs at start
    finally:
        loop.stop()
    assert loop.passes == 1 and loop.last_error is None


def test_each_transition_is_recorded_in_the_slo_alert_history_and_a_failed_write_never_undoes_it():
    inbox = Inbox()
    d = DirectAlerts(inbox, DirectConfig())
    tier = {"long": "5m", "short": "1m", "threshold": 10.0, "long_burn_rate": 12.5, "short_burn_rate": 20.0,
            "firing": True, "held": False, "held_from": None}
    for sec, active in [(0, True), (5, True), (9, False)]:
        d.feed([Condition(LABELS, {}, active, dt.timedelta(0), T0 + dt.timedelta(seconds=sec),
                          (tier if active else {**tier, "firing": False},))])
    cols = dict(zip(("at", "slo", "group", "severity", "alertname", "fp", "status", "starts", "ends", "tiers"),
                    zip(*inbox.store.rows)))
    assert cols["status"] == ("firing", "resolved") and cols["slo"] == ("api", "api")
    assert cols["starts"] == (T0, T0) and cols["ends"] == (None, T0 + dt.timedelta(seconds=9))
    assert '"long_burn_rate":12.5' in cols["tiers"][0] and cols["tiers"][1] == "[]"   # the rates at firing

    class Down(HistoryRows):
        def insert(self, table, rows, columns):
            from revwatch.store import StoreError
            raise StoreError("store down")
    inbox2 = Inbox()
    inbox2.store = Down()
    d2 = DirectAlerts(inbox2, DirectConfig())
    assert run(d2, inbox2, [(0, True), (2, True)]) == [(0, "firing")]     # submitted once, not retried
    assert d2.firing() == [fingerprint(LABELS)]


def test_journey_summaries_are_recomputed_every_summary_interval_and_carried_between():
    """The evaluator recomputes the lookback scans (stuck summaries, lag quantiles, forecasts) every
    `summary_interval` only (revwatch/config.py EvaluatorConfig); the SLO results are every pass's."""
    from revwatch.evaluator import EvaluatorLoop
    now = [5000.0]
    rec = Recorder(now, 0.0)
    loop = EvaluatorLoop(rec, None, 2.0, "", clock=lambda: now[0], summary_interval=30.0)
    drive(loop, now, 5065.0)
    due = [round(t - 5000.0) for t, s in zip(rec.starts, rec.summaries) if s]
    assert len(rec.starts) >= 32 and due == [0, 30, 60], due
