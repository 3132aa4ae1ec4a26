"""Per-SLO alert history from revwatch's own evaluations (alerts/history.py): a constructed burn through the direct
path (alerts/direct.py) fires the SLO's page and ticket, dilution resolves them; the API and the SLO page show
both incidents, fired then resolved, with the windows and burn rates of the firing pass."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from alerts.history import HistoryLog
from alerts.routing import Alert
from revwatch.config import ConfigError, load_config
from revwatch.store import StoreError
from tests.support.slo_data import add_span_list, odoo_error_ratio_config

CFG = odoo_error_ratio_config(page_burn=10) + "evaluator: {enabled: true, interval: 1h}\n"


def spans_now(n: int, bad_every: int, seconds_ago: float) -> list[tuple[int, bool]]:
    base = int((time.time() - seconds_ago) * 1e9)
    return [(base + k * 1000, bad_every > 0 and k % bad_every == 0) for k in range(n)]


def hand_driven(api):
    """The server's evaluator loop with its thread stopped: the test runs each pass itself. Left running, the thread's
    start-up pass — late on a loaded machine — could record the same transition beside the test's own pass."""
    loop = api.ctx.evaluator
    loop.stop()
    return loop


def test_a_burn_fires_and_resolves_into_the_slo_alert_history(api_factory):
    api = api_factory(CFG)
    loop = hand_driven(api)
    assert loop is not None and loop.direct is not None
    before = dt.datetime.now(dt.timezone.utc)
    loop.run_once()                                                # no data: nothing fires
    assert api.get("/api/v1/slos/api/alerts").json()["items"] == []
    add_span_list(api.ctx.store, spans_now(100, 2, 10))            # 50 % errors: burn 50× ≥ 10 (page) and ≥ 2
    loop.run_once()
    firing = api.get("/api/v1/slos/api/alerts").json()["items"]
    assert sorted((i["severity"], i["status"]) for i in firing) == [("page", "firing"), ("ticket", "firing")]
    for i in firing:
        assert i["resolved_at"] is None and i["duration_seconds"] is None and i["held"] is False
        assert i["fired_at"] >= before.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        [tier] = i["tiers"]
        assert tier["firing"] is True and abs(tier["long_burn_rate"] - 50.0) < 1e-6
        assert abs(tier["short_burn_rate"] - 50.0) < 1e-6
    page = next(i for i in firing if i["severity"] == "page")
    assert (page["tiers"][0]["long"], page["tiers"][0]["short"], page["tiers"][0]["threshold"]) == ("5m", "1m", 10)
    good = spans_now(30_000, 0, 5)                                 # diluted: 50 bad of 30,100 → burn 0.17
    for k in range(0, len(good), 5000):
        add_span_list(api.ctx.store, good[k:k + 5000])
    loop.run_once()
    items = api.get("/api/v1/slos/api/alerts").json()["items"]
    assert sorted((i["severity"], i["status"]) for i in items) == [("page", "resolved"), ("ticket", "resolved")]
    for i in items:
        assert i["fired_at"] < i["resolved_at"] and i["duration_seconds"] > 0
        assert i["fired_at"] == next(f["fired_at"] for f in firing if f["severity"] == i["severity"])
        assert i["tiers"][0]["long_burn_rate"] > 10                # the rates of the firing pass, not the resolve
    # since after both resolved: nothing; a fresh burn is a second incident, listed first (newest first)
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)).isoformat()
    assert api.get("/api/v1/slos/api/alerts", params={"since": later}).json()["items"] == []
    again = spans_now(40_000, 2, 2)
    for k in range(0, len(again), 5000):
        add_span_list(api.ctx.store, again[k:k + 5000])
    loop.run_once()
    items = api.get("/api/v1/slos/api/alerts").json()["items"]
    assert [i["status"] for i in items][:2] == ["firing", "firing"] and len(items) == 4
    assert [i["fired_at"] for i in items] == sorted((i["fired_at"] for i in items), reverse=True)
    # the SLO page shows the same rows
    r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui/"}, follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    html = api.client.get("/ui/slos/api?range=1h").text
    section = html[html.index('id="alert-history"'):]
    section = section[:section.index("</section>")]
    link = section[section.index("/api/v1/slos/api/alerts?since="):].split('"')[0].replace("&amp;", "&")
    assert api.get(link).json()["items"] == items                                  # the page's JSON link works
    rows = section.split("<tr")[2:]                                                  # after the header row
    assert len(rows) == 4 and ["still firing" in row for row in rows] == [True, True, False, False]
    assert "5m & 1m: 50.00× / 50.00× (fires at 10×)" in section


def test_the_slo_alert_history_route_refuses_bad_input(api_factory):
    api = api_factory(CFG)
    r = api.get("/api/v1/slos/nope/alerts")
    assert r.status_code == 404 and r.json()["field"] == "name"
    r = api.get("/api/v1/slos/api/alerts", params={"since": "yesterday-ish"})
    assert r.status_code == 400 and r.json()["field"] == "since"
    assert api.client.get("/api/v1/slos/api/alerts").status_code == 401


class HistoryDown:
    """The store refuses writes to the alert history only (the inbox and everything else work): the page must go
    on, the row must wait and arrive once the store takes it."""

    def __init__(self, store):
        self.store, self.real, self.refused = store, store.insert, 0

    def __enter__(self):
        def insert(table, rows, columns, dedup_token=None):
            if table == "slo_alert_history":
                self.refused += 1
                raise StoreError("history table unavailable")
            return self.real(table, rows, columns, dedup_token)
        self.store.insert = insert
        return self

    def __exit__(self, *exc):
        self.store.insert = self.real


def _metric(api, name: str) -> float:
    line = next(x for x in api.client.get("/metrics").text.splitlines() if x.startswith(name + " "))
    return float(line.split()[-1])


def test_a_refused_history_write_is_kept_pending_and_arrives_at_the_next_pass(api_factory):
    api = api_factory(CFG + "server: {metrics_public: true}\n")
    loop = hand_driven(api)
    add_span_list(api.ctx.store, spans_now(100, 2, 10))
    with HistoryDown(api.ctx.store) as down:
        loop.run_once()                                            # fires: the inbox has it, the history refuses
        assert loop.last_error is None and len(loop.direct.firing()) == 2   # the page is not undone
        assert api.get("/api/v1/slos/api/alerts").json()["items"] == []
        assert _metric(api, "revwatch_slo_alert_history_pending") == 2
        loop.run_once()                                            # still down: retried once per pass, kept
        assert down.refused == 2 and _metric(api, "revwatch_slo_alert_history_write_failures_total") == 2
    loop.run_once()                                                # back: the rows of the firing pass arrive
    items = api.get("/api/v1/slos/api/alerts").json()["items"]
    assert sorted((i["severity"], i["status"]) for i in items) == [("page", "firing"), ("ticket", "firing")]
    assert all(abs(i["tiers"][0]["long_burn_rate"] - 50.0) < 1e-6 for i in items)   # with the tiers of that pass
    assert _metric(api, "revwatch_slo_alert_history_pending") == 0


def test_history_rows_expire_after_the_configured_retention(api_factory):
    api = api_factory(CFG + "alerts: {direct: {history_retention: 30d}}\n")
    store = api.ctx.store
    ddl = store.query(f"SHOW CREATE TABLE {store.table('slo_alert_history')}").scalar()
    assert "TTL ExpiresAt" in ddl                                  # schema migration 30
    loop = hand_driven(api)
    add_span_list(store, spans_now(100, 2, 10))
    loop.run_once()
    [(at, expires)] = store.query(f"SELECT At, ExpiresAt FROM {store.table('slo_alert_history')} "
                                  "WHERE Severity = 'page'").rows
    assert (expires - at.replace(microsecond=0)).days == 30       # the configured retention, per row
    # a row written 31 days ago under that retention has expired: the TTL drops it (at the next merge, or at once:
    # ClickHouse may schedule a TTL merge right after the insert, so its presence before OPTIMIZE is not asserted);
    # the same row written under a 40-day retention has not, and stays
    count = f"SELECT count() FROM {store.table('slo_alert_history')} WHERE Fingerprint = {{fp:String}}"
    for fp, days in (("0ld1ncident0000", 30), ("0ld1ncident0040", 40)):
        old = HistoryLog(store, dt.timedelta(days=days), clock=lambda: time.time() - 31 * 86400)
        old.record([Alert(fp, "firing", {"slo": "api", "severity": "page", "alertname": "X"}, {},
                          time.time() - 31 * 86400)], {}, time.time() - 31 * 86400)
        assert old.pending == []                                   # written (a refused write stays pending)
    store.command(f"OPTIMIZE TABLE {store.table('slo_alert_history')} FINAL")
    assert store.query(count, {"fp": "0ld1ncident0000"}).scalar() == 0
    assert store.query(count, {"fp": "0ld1ncident0040"}).scalar() == 1
    assert store.query(f"SELECT count() FROM {store.table('slo_alert_history')}").scalar() == 3   # + today's 2


def test_history_retention_below_a_day_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("alerts: {direct: {history_retention: 1h}}\n")
    with pytest.raises(ConfigError, match=r"alerts.direct.history_retention"):
        load_config(p)


def test_a_restart_keeps_one_incident_and_backfills_what_the_history_lost(make_config):
    """The firing pass's history row is refused and the process stops before the retry: after the restart the
    history shows the incident that fired before it (backfilled from the inbox), the condition still firing is
    adopted (no second page, no second firing row), and its resolve closes that same incident."""
    from fastapi.testclient import TestClient

    from revwatch.server import create_app
    cfg = make_config(CFG)
    app = create_app(cfg)
    with TestClient(app):
        ctx = app.state.ctx
        add_span_list(ctx.store, spans_now(100, 2, 10))
        with HistoryDown(ctx.store):
            ctx.evaluator.run_once()
        assert len(ctx.evaluator.direct.history.pending) == 2     # lost with the process
    app2 = create_app(cfg)
    with TestClient(app2) as client:
        ctx2 = app2.state.ctx
        key = ctx2.keys.create("read")[0]
        ctx2.evaluator.run_once()                                  # still burning: adopted, backfilled
        items = client.get("/api/v1/slos/api/alerts", headers={"Authorization": f"Bearer {key}"}).json()["items"]
        assert sorted((i["severity"], i["status"]) for i in items) == [("page", "firing"), ("ticket", "firing")]
        fired = {i["severity"]: i["fired_at"] for i in items}
        good = spans_now(30_000, 0, 5)
        for k in range(0, len(good), 5000):
            add_span_list(ctx2.store, good[k:k + 5000])
        ctx2.evaluator.run_once()
        items = client.get("/api/v1/slos/api/alerts", headers={"Authorization": f"Bearer {key}"}).json()["items"]
        assert sorted((i["severity"], i["status"]) for i in items) == [("page", "resolved"), ("ticket", "resolved")]
        assert {i["severity"]: i["fired_at"] for i in items} == fired           # the same incidents, closed
        firing = ctx2.store.query(f"SELECT count() FROM {ctx2.store.table('alert_inbox')} "
                                  "WHERE Origin = 'evaluator' AND Status = 'firing'").scalar()
        assert firing == 2                                         # one trigger per severity across the restart
