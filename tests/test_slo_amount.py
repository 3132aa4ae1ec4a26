"""Money-weighted SLOs (`budgeting: amount`) against hand counts: good/bad in currency units per currency group
(never summed across currencies), burn per window, budget in money, late data still exact, /metrics and API."""
import datetime as dt
import itertools
from decimal import Decimal

import pytest

from collector.rows import EVENT_COLUMNS, EventRow
from slo.engine import SloEngine
from tests.support.slo_data import anchor

M = dt.timedelta(minutes=1)
_ids = itertools.count()
CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp-money, journey: p2p, objective: 0.99, window: 1d, budgeting: amount,
     sli: {kind: journey_latency, threshold: 15m}, alerting: {min_events: 1}}
  - {name: pp-money-gw, journey: p2p, objective: 0.99, window: 1d, budgeting: amount, group_by: [gateway],
     sli: {kind: journey_latency, threshold: 15m}}
  - {name: pp-count, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
"""


def pay(store, cid, start, end, amount, currency, gateway="stripe"):
    rows = [EventRow(EventId=f"m{next(_ids)}", Type="payment.settled", CorrelationId=cid,
                     OccurredAt=int(start.timestamp() * 1000), Source=gateway, Amount=amount, Currency=currency,
                     Attributes={"gateway": gateway})]
    if end is not None:
        rows.append(EventRow(EventId=f"m{next(_ids)}", Type="payment.posted", CorrelationId=cid,
                             OccurredAt=int(end.timestamp() * 1000), Source="odoo"))
    store.insert("events", [list(r) for r in rows], EVENT_COLUMNS)


@pytest.fixture
def money_data(store):
    T = anchor()
    pay(store, "A", T - 50 * M, T - 45 * M, "1000.10", "EUR")              # good, decided T-45m
    pay(store, "A", T - 50 * M, T - 45 * M, "1000.10", "EUR")              # duplicated delivery: counts once
    pay(store, "B", T - 40 * M, T - 10 * M, "250.05", "EUR", "adyen")      # late: bad, decided T-25m
    pay(store, "C", T - 30 * M, None, "0.01", "EUR")                       # never posted: bad, decided T-15m
    pay(store, "D", T - 10 * M, None, "99.99", "EUR")                      # undecided at T
    pay(store, "U1", T - 100 * M, T - 99 * M, "10.00", "USD")              # good, USD
    pay(store, "U2", T - 20 * M, None, "30.00", "USD", "adyen")            # never posted: bad, decided T-5m
    pay(store, "N", T - 100 * M, T - 99 * M, None, "")                     # no amount: not in a money SLO
    return T


def test_money_windows_burn_and_budget_per_currency(store, make_config, money_data):
    T = money_data
    res = {(r.spec.name, r.group): r for r in SloEngine(store, make_config(CFG)).evaluate(T)}
    eur, usd = res[("pp-money", "EUR")], res[("pp-money", "USD")]
    assert {g for n, g in res if n == "pp-money"} == {"EUR", "USD"}            # never summed across currencies
    d = eur.as_dict()
    # hand count, EUR: good 1000.10 (A), bad 250.05 (B) + 0.01 (C) = 250.06, total 1250.16
    assert d["windows"]["slo"]["money"] == {"good": "1000.10", "total": "1250.16", "bad": "250.06"}
    assert d["windows"]["30m"]["money"] == {"good": "0.00", "total": "250.06", "bad": "250.06"}   # B, C
    assert d["windows"]["1h"]["money"] == {"good": "1000.10", "total": "1250.16", "bad": "250.06"}
    assert eur.windows["1h"].burn_rate == pytest.approx((250.06 / 1250.16) / 0.01)
    assert eur.windows["30m"].burn_rate == pytest.approx(100.0)
    b = d["budget"]
    assert b["unit"] == "EUR" and d["currency"] == "EUR" and d["budgeting"] == "amount"
    assert b["money"] == {"currency": "EUR", "total": "1250.16", "allowed_bad": "12.5016", "bad": "250.06",
                          "remaining": "-237.5584"}
    assert b["remaining_ratio"] == pytest.approx(1 - 250.06 / 12.5016)
    # USD: good 10.00 (U1), bad 30.00 (U2)
    assert usd.as_dict()["windows"]["slo"]["money"] == {"good": "10.00", "total": "40.00", "bad": "30.00"}
    assert usd.windows["30m"].total == 300_000 and usd.windows["30m"].good == 0        # U2, decided T-5m
    assert usd.windows["5m"].total == 0                 # the 5m window is minutes T-4m..T
    # grouped by gateway and currency
    assert res[("pp-money-gw", "stripe|EUR")].as_dict()["windows"]["slo"]["money"]["bad"] == "0.01"
    assert res[("pp-money-gw", "adyen|EUR")].as_dict()["windows"]["slo"]["money"]["bad"] == "250.05"
    assert res[("pp-money-gw", "adyen|USD")].as_dict()["windows"]["slo"]["money"]["total"] == "30.00"
    # the count SLO over the same instances: 6 decided (A, B, C, U1, U2, N), 3 bad
    cnt = res[("pp-count", "")].windows["slo"]
    assert (cnt.good, cnt.total) == (3, 6)


def test_money_rollup_exact_and_late_data(store, make_config, money_data):
    T = money_data
    cfg = make_config(CFG)
    engine = SloEngine(store, cfg)
    engine.evaluate_and_cache()                                          # writes the rollup minutes
    live = {r.group: r.as_dict()["windows"]["1d"]["money"] for r in engine.evaluate() if r.spec.name == "pp-money"}
    assert live["EUR"]["bad"] == "350.05" and live["EUR"]["total"] == "1350.15"       # D (99.99) decided since
    pay(store, "L", T - 30 * M, T - 29 * M, "0.07", "EUR")                # late arrival: good, decided T-29m
    engine.evaluate_and_cache()
    after = {r.group: r.as_dict()["windows"]["1d"]["money"] for r in engine.evaluate() if r.spec.name == "pp-money"}
    assert after["EUR"] == {"good": "1000.17", "total": "1350.22", "bad": "350.05"}
    assert after["USD"] == live["USD"]


def test_amount_needs_a_journey_sli(make_config):
    with pytest.raises(Exception, match="budgeting: amount"):
        make_config("""
slos:
  - {name: api, objective: 0.99, budgeting: amount,
     sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
""")


def test_money_api_and_metrics(api_factory, money_data):
    api = api_factory(CFG)
    api.ctx.slo.evaluate_and_cache()
    doc = api.get("/api/v1/slos/pp-money").json()
    by_group = {r["group"]: r for r in doc["results"]}
    assert set(by_group) == {"EUR", "USD"}
    eur = by_group["EUR"]
    assert eur["currency"] == "EUR" and eur["budget"]["unit"] == "EUR"
    # by now D (99.99 EUR, never posted) is decided bad too: bad 350.05, total 1350.15
    assert eur["budget"]["money"]["bad"] == "350.05" and eur["budget"]["money"]["total"] == "1350.15"
    assert eur["windows"]["slo"]["money"] == {"good": "1000.10", "total": "1350.15", "bad": "350.05"}
    text = api.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("revwatch_slo_error_budget_amount{")
                and 'slo="pp-money"' in x and 'group="EUR"' in x and 'part="bad"' in x)
    assert Decimal(line.rsplit(" ", 1)[1]) == Decimal("350.05")
    events = next(x for x in text.splitlines() if x.startswith("revwatch_slo_window_events{")
                  and 'slo="pp-money"' in x and 'group="USD"' in x and 'window="slo"' in x)
    assert float(events.rsplit(" ", 1)[1]) == 40.0                     # currency units, not 1/10 000
    r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui/"}, follow_redirects=False)
    assert r.status_code == 303
    page = api.client.get("/ui/").text                      # the overview shows the budget in money
    assert "350.05 EUR / 1,350.15 EUR" in page and "30.00 USD / 40.00 USD" in page


def test_money_slo_attribution_per_currency_group(api_factory, money_data):
    api = api_factory(CFG)
    a = api.get("/api/v1/slos/pp-money/attribution", params={"group": "EUR"}).json()
    # EUR instances only: A on time, B late (250.05), C and D never posted (0.01 + 99.99)
    assert a["instances"]["started"] == 4 and a["instances"]["late"] == 1 and a["instances"]["stuck"] == 2
    assert a["money_bad"] == {"EUR": "350.05"} and a["money_at_risk"] == {"EUR": "100.00"}
    assert a["budget"]["unit"] == "EUR"
    usd = api.get("/api/v1/slos/pp-money/attribution", params={"group": "USD"}).json()
    assert usd["instances"]["started"] == 2 and usd["money_at_risk"] == {"USD": "30.00"}
