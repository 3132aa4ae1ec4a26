"""In-flight forecast against a constructed backlog: pace from recent transitions (exact p50/p95), which in-flight
instances breach and when, stuck vs paced breaches, money at risk, projected budget, the exhaustion time and the
page signal; count and money-weighted SLOs; the API."""
import datetime as dt
import itertools

import pytest

from collector.rows import EVENT_COLUMNS, EventRow
from slo.engine import SloEngine
from slo.forecast import forecast

M = dt.timedelta(minutes=1)
S = dt.timedelta(seconds=1)
_ids = itertools.count()
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
CFG = """
journeys:
  p2p: {start: payment.settled, end: payment.posted, milestones: [payment.received_by_odoo]}
slos:
  - {name: pp, journey: p2p, objective: 0.7, window: 1d, sli: {kind: journey_latency, threshold: 30m}}
  - {name: pp-money, journey: p2p, objective: 0.7, window: 1d, budgeting: amount,
     sli: {kind: journey_latency, threshold: 30m}}
  - {name: api, objective: 0.99, window: 1d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
"""


def ev(cid, typ, at, amount=None, cur="EUR"):
    return list(EventRow(EventId=f"fc{next(_ids)}", Type=typ, CorrelationId=cid, OccurredAt=int(at.timestamp() * 1000),
                         Source="stripe", Amount=amount, Currency=cur if amount else ""))


def seed(store, NOW=NOW):  # noqa: N803 - the tests' "now", fresh for the API test (real time runs on)
    rows = []
    # pace: 5 completed payments 2 h ago; settled → received [60, 60, 60, 120, 600] s, received → posted 300 s
    for i, lat in enumerate((60, 60, 60, 120, 600)):
        t = NOW - 2 * dt.timedelta(hours=1) + i * M
        rows += [ev(f"P{i}", "payment.settled", t, "10.00"), ev(f"P{i}", "payment.received_by_odoo", t + lat * S),
                 ev(f"P{i}", "payment.posted", t + lat * S + 300 * S)]
    rows += [ev("B1", "payment.settled", NOW - 3 * dt.timedelta(hours=1), "40.00")]       # decided bad
    # in flight (threshold 30 min). With F2, F4, F7's own transitions the settled → received pace is
    # [60, 60, 60, 120, 270, 540, 600, 1680]: p50 270 s, p95 1680 s; received → posted: p50 = p95 = 300 s
    rows += [ev("F1", "payment.settled", NOW - 5 * M, "5.00"),                             # on time
             ev("F2", "payment.settled", NOW - 29 * M, "100.00"),
             ev("F2", "payment.received_by_odoo", NOW - 20 * M),                           # waited 1200 > 300: stuck
             ev("F3", "payment.settled", NOW - 27 * M, "50.00"),                           # paced end +5m > +3m
             ev("F4", "payment.settled", NOW - 24 * M, "7.00"),
             ev("F4", "payment.received_by_odoo", NOW - 19 * M - 30 * S),                  # waited 1170 > 300: stuck
             ev("F5", "payment.settled", NOW - 27 * M - 30 * S, "20.00", "USD"),           # paced end +5m > +2.5m
             ev("F7", "payment.settled", NOW - 29 * M, "10.00"),
             ev("F7", "payment.received_by_odoo", NOW - 1 * M)]                            # posted +4m > +1m
    store.insert("events", rows, EVENT_COLUMNS)


@pytest.fixture
def engine(store, make_config):
    seed(store)
    return SloEngine(store, make_config(CFG))


def test_forecast_counts(engine):
    (doc,) = forecast(engine, engine.spec("pp"), now=NOW)
    assert doc["pace"]["payment.received_by_odoo"] == {"p50": 270.0, "p95": 1680.0, "n": 8}
    assert doc["pace"]["payment.posted"] == {"p50": 300.0, "p95": 300.0, "n": 5}
    assert doc["in_flight"] == 6 and doc["predicted_breaches"] == 5 and doc["stuck"] == 2
    assert doc["first_breach_at"] == (NOW + M).isoformat().replace("+00:00", "Z")
    assert [e["correlation_id"] for e in doc["examples"]][2:] == ["F5", "F3", "F4"]
    assert {e["correlation_id"] for e in doc["examples"][:2]} == {"F2", "F7"}
    assert doc["money_at_risk"] == {"EUR": "167.00", "USD": "20.00"}
    assert sum(h["count"] for h in doc["breaches_by_hour"]) == 5
    # decided: 6 (5 good, B1 bad); projected allowance 0.3 × (6 + 6) = 3.6; 1 + F2 + F7 + F5 = 4 > 3.6 at +2.5 min
    b = doc["budget"]
    assert b["bad_now"] == 1 and b["bad_projected"] == 6 and b["allowed_bad"] == pytest.approx(3.6)
    assert b["remaining_ratio_now"] == pytest.approx(1 - 1 / 1.8)
    assert b["remaining_ratio_projected"] == pytest.approx(1 - 6 / 3.6)
    assert doc["exhausted_at"] == (NOW + 150 * S).isoformat().replace("+00:00", "Z")
    assert doc["exhausted_within_hours"] == round(150 / 3600, 3) and doc["page"] is True


def test_forecast_money_per_currency(engine):
    docs = {d["group"]: d for d in forecast(engine, engine.spec("pp-money"), now=NOW)}
    eur, usd = docs["EUR"], docs["USD"]
    assert eur["unit"] == "EUR" and eur["in_flight"] == 5 and eur["predicted_breaches"] == 4
    assert eur["money_at_risk"] == {"EUR": "167.00"}
    # EUR decided: 50 good + 40 bad = 90; 40 > 0.3 × 90 = 27: spent already
    assert eur["budget"]["bad_now"] == "40.00" and eur["exhausted_within_hours"] == 0 and eur["page"]
    assert eur["budget"]["allowed_bad"] == "78.60"                      # 0.3 × (90 + 172)
    # USD: nothing decided; F5 (20 USD) breaches at +2.5 min > 0.3 × 20
    assert usd["budget"]["bad_projected"] == "20.00" and usd["exhausted_within_hours"] == round(150 / 3600, 3)


def test_forecast_api(api_factory):
    api = api_factory(CFG)
    seed(api.ctx.store, dt.datetime.now(dt.timezone.utc).replace(microsecond=0))    # the API forecasts as of now
    doc = api.get("/api/v1/slos/pp/forecast").json()
    (f,) = doc["forecasts"]
    assert f["in_flight"] == 6 and f["predicted_breaches"] == 5 and f["page"] is True
    assert api.get("/api/v1/slos/pp/forecast", params={"within": "1m"}).json()["forecasts"][0]["page"] is False
    assert api.get("/api/v1/slos/pp-money/forecast", params={"group": "USD"}).json()["forecasts"][0]["group"] == "USD"
    assert api.get("/api/v1/slos/api/forecast").json()["field"] == "name"
    assert api.get("/api/v1/slos/nope/forecast").status_code == 404
    assert api.get("/api/v1/slos/pp/forecast", params={"within": "soon"}).json()["field"] == "within"
    r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui/"}, follow_redirects=False)
    assert r.status_code == 303
    page = api.client.get("/ui/slos/pp").text                # the SLO page shows the same forecast
    assert "Forecast: in flight now" in page and "PAGE" in page and "167.00 EUR" in page
    api.ctx.slo.evaluate_and_cache()                       # the evaluator keeps forecasts for /metrics
    text = api.get("/metrics").text
    assert 'revwatch_slo_forecast_breaches{group="",slo="pp"} 5.0' in text
    line = next(x for x in text.splitlines() if x.startswith("revwatch_slo_forecast_exhausted_in_seconds{")
                and 'slo="pp"' in x)
    assert 0 < float(line.rsplit(" ", 1)[1]) <= 150
    # the stuck list in /metrics: B1 (40.00 EUR, 3 h old) is the only overdue instance (threshold 30 min)
    assert 'revwatch_journey_stuck{journey="p2p"} 1.0' in text
    assert 'revwatch_journey_stuck_amount{currency="EUR",journey="p2p"} 40.0' in text


def test_forecast_cli(api_factory, monkeypatch):
    import json

    from typer.testing import CliRunner

    from revwatch.cli import slo as cli_slo
    from revwatch.cli.app import app as cli_app
    from revwatch.cli.target import LocalTarget
    api = api_factory(CFG)
    seed(api.ctx.store, dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    monkeypatch.setattr(cli_slo, "open_target", lambda cfg: LocalTarget(api.ctx.store, api.ctx.config))
    monkeypatch.setattr(cli_slo, "load_cli_config", lambda path: api.ctx.config)
    res = CliRunner().invoke(cli_app, ["slo", "forecast", "pp", "--json"])
    assert res.exit_code == 0, res.output
    (doc,) = json.loads(res.stdout)["forecasts"]
    assert doc["predicted_breaches"] == 5 and doc["money_at_risk"] == {"EUR": "167.00", "USD": "20.00"}
    text = CliRunner().invoke(cli_app, ["slo", "forecast", "pp"]).stdout
    assert "6 in flight, 5 will breach (2 stuck)" in text and "PAGE" in text
    bad = CliRunner().invoke(cli_app, ["slo", "forecast", "api"])
    assert bad.exit_code == 2 and "span_ratio" in bad.output
