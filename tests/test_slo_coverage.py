"""Coverage: time without data is unknown, never good. Hand counts over span traffic with gaps."""
import datetime as dt

from slo.coverage import journey_silence
from slo.engine import SloEngine
from tests.test_alerts import sink  # noqa: F401  (the live webhook sink fixture)
from tests.support.slo_data import add_events, add_spans, anchor

M = dt.timedelta(minutes=1)
CFG = """
slos: [{name: api, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}]
"""


def one(store, cfg, at):
    [r] = SloEngine(store, cfg).evaluate(at)
    return r


def test_coverage_per_window_with_gaps_and_a_held_page(store, make_config):
    T = anchor(8)
    add_spans(store, T - 300 * M, minutes=60, per_minute=10)                        # minutes T-300 … T-241, all good
    add_spans(store, T - 120 * M, minutes=30, per_minute=10, errors_per_minute=5)   # minutes T-120 … T-91, half bad
    r = one(store, make_config(CFG), T)
    cov = r.coverage
    # window W ends with minute T (inclusive): minutes T-W+1 … T
    assert {w: (c.covered, c.minutes) for w, c in cov.windows.items() if w in ("5m", "1h", "2h", "6h", "slo")} == {
        "5m": (0, 5), "1h": (0, 60), "2h": (29, 120), "6h": (90, 360), "slo": (90, 1440)}
    assert cov.windows["2h"].ratio == 29 / 120
    assert cov.last_data == T - 91 * M and cov.silent_for == 91 * M
    assert cov.no_data                                   # 91 silent minutes ≥ the 1h page window
    page = [a for a in r.alerts if a["severity"] == "page"]
    fast = next(a for a in page if a["long"] == "1h")
    # the 1h/5m pair burned 50x (half of every span bad) up to T-87m, the last minute its 5m window still held
    # minute T-91 (the last with data): the page holds that state instead of resolving
    assert fast["held"] and fast["firing"] and fast["held_from"] == (T - 87 * M).isoformat()
    assert r.state == "page"
    assert r.as_dict()["coverage"]["no_data_for_minutes"] == 91
    assert "page 1h/5m" in r.as_dict()["coverage"]["held_alerts"]


def test_no_data_is_a_state_not_ok(store, make_config):
    T = anchor(8)
    add_spans(store, T - 300 * M, minutes=60, per_minute=10)          # good traffic, then silence
    r = one(store, make_config(CFG), T)
    assert r.state == "no_data" and not any(a["firing"] for a in r.alerts)
    assert all(a["held"] for a in r.alerts if a["long"] in ("1h", "6h") or a["short"] == "5m")
    empty = one(store, make_config(CFG), T - 400 * M)                  # before any data: nothing known
    assert empty.state == "no_data" and empty.coverage.last_data is None and empty.coverage.windows["slo"].covered == 0
    busy = one(store, make_config(CFG), T - 250 * M)                   # inside the good traffic
    assert busy.state == "ok" and busy.coverage.windows["5m"].covered == 5


def test_no_data_after_is_configurable(store, make_config):
    T = anchor(8)
    add_spans(store, T - 300 * M, minutes=60, per_minute=10)
    cfg = make_config(CFG.replace("window: 1d,", "window: 1d, no_data_after: 2h,"))
    assert one(store, cfg, T - 241 * M + 119 * M).state == "ok"        # 119 silent minutes < 2h
    assert one(store, cfg, T - 241 * M + 120 * M).state == "no_data"


def test_journey_that_should_always_flow(store, make_config):
    cfg = make_config("journeys: {o2c: {start: order.created, end: invoice.paid, no_data_alert: 30m},"
                      " p2p: {start: pay.a, end: pay.b}}")
    T = anchor(2)
    add_events(store, [("order.created", "c1", T - 40 * M + dt.timedelta(seconds=10)),
                       ("invoice.paid", "c1", T - 31 * M + dt.timedelta(seconds=50))])
    s = journey_silence(store, cfg.journeys, T)
    assert set(s) == {"o2c"}                              # only journeys that declare no_data_alert
    assert s["o2c"].silent_for == 30 * M and s["o2c"].alerting      # last event in minute T-31: silent since T-30
    assert not journey_silence(store, cfg.journeys, T - M)["o2c"].alerting
    assert journey_silence(store, cfg.journeys, T - 60 * M)["o2c"].last_event is None


def test_journey_no_data_alert_is_routed_by_team_and_resolves(api_factory, sink):  # noqa: F811
    api = api_factory(f"""
journeys: {{o2c: {{start: order.created, end: invoice.paid, no_data_alert: 5m, no_data_severity: page, team: billing,
               owner: ana, runbook: "https://wiki.example.com/o2c"}}}}
alerts:
  notifiers: {{hook: {{type: webhook, url: "{sink.base}/hook"}}}}
  routes: [{{match: {{team: billing}}, notifiers: [hook], group_by: [alertname], group_wait: 0s, group_interval: 1s}}]
  delivery: {{backoff_initial: 100ms, backoff_max: 400ms, tick: 50ms}}
  internal: {{interval: 100ms}}
""")
    api.ctx.slo.evaluate_and_cache()                     # no event ever: the journey is silent
    [hook] = sink.wait("hook")
    [a] = hook["alerts"]
    assert a["labels"] == {"alertname": "RevwatchJourneyNoData", "severity": "page", "journey": "o2c",
                           "team": "billing", "owner": "ana"}
    assert a["annotations"]["runbook_url"] == "https://wiki.example.com/o2c" and hook["status"] == "firing"
    add_events(api.ctx.store, [("order.created", "c1", dt.datetime.now(dt.timezone.utc))])
    api.ctx.slo.evaluate_and_cache()
    hooks = sink.wait("hook", 2)
    assert hooks[1]["status"] == "resolved" and hooks[1]["alerts"][0]["labels"]["journey"] == "o2c"


def test_each_tier_holds_the_state_it_had_when_its_own_windows_last_had_data(store, make_config):
    """A tier's windows keep data after the SLO's last minute with data (until the short window slides past it); the
    tier holds the state it had then, never an older one (docs/slo-policy.md "Coverage"). Before, every tier held the
    state as of the last minute with data: the page below fired with data at L+4 and went silent at L+5."""
    cfg = make_config(CFG.replace("bad_when: {StatusCode: Error}}", "bad_when: {StatusCode: Error}},\n"
                                  "        alerting: {page: [{long: 30m, short: 5m, burn_rate: 3.5}], ticket: []}"))
    L = anchor(8) - 100 * M
    add_spans(store, L - 29 * M, minutes=30, per_minute=10, error_from=L)   # minutes L-29 … L, minute L all bad
    # as of minute L: 5m = L-4 … L, 50 spans, 10 bad: burn 20; 30m = L-29 … L, 300 spans, 10 bad: burn 3.33 < 3.5
    at_l = one(store, cfg, L + dt.timedelta(seconds=59))
    [tier] = at_l.alerts
    assert round(tier["short_burn_rate"], 6) == 20 and round(tier["long_burn_rate"], 2) == 3.33 and not tier["firing"]
    # as of minute L+4: 5m = minute L alone, 10 of 10 bad: burn 100; 30m = L-25 … L+4: 260 spans, 10 bad: 3.85
    at_l4 = one(store, cfg, L + 4 * M + dt.timedelta(seconds=59))
    [tier] = at_l4.alerts
    assert round(tier["short_burn_rate"], 6) == 100 and round(tier["long_burn_rate"], 2) == 3.85
    assert tier["firing"] and not tier["held"]
    # L+10: the 5m window is empty; the tier holds its L+4 state (firing), not its L state
    later = one(store, cfg, L + 10 * M + dt.timedelta(seconds=30))
    [tier] = later.alerts
    assert tier["held"] and tier["firing"] and tier["held_from"] == (L + 4 * M).isoformat()
    assert later.state == "page" and later.coverage.held == ["page 30m/5m"]
