"""Per-SLO alert history from revwatch's own evaluations (alerts/history.py): a constructed burn through the direct
path (alerts/direct.py) fires the SLO's page and ticket, dilution resolves them; the API and the SLO page show
both incidents, fired then resolved, with the windows and burn rates of the firing pass."""
from __future__ import annotations

import datetime as dt
import time

from tests.support.slo_data import add_span_list

CFG = """
slos:
  - name: api
    objective: 0.99
    window: 1d
    sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}
    alerting:
      page: [{long: 5m, short: 1m, burn_rate: 10}]
      ticket: [{long: 1h, short: 5m, burn_rate: 2}]
evaluator: {enabled: true, interval: 1h}
"""


def spans_now(n: int, bad_every: int, seconds_ago: float) -> list[tuple[int, bool]]:
    base = int((time.time() - seconds_ago) * 1e9)
    return [(base + k * 1000, bad_every > 0 and k % bad_every == 0) for k in range(n)]


def test_a_burn_fires_and_resolves_into_the_slo_alert_history(api_factory):
    api = api_factory(CFG)
    loop = api.ctx.evaluator
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
