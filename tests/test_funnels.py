"""Funnels against hand counts: count and money reaching each step (own amounts where a step carries one),
conversion, drop-off, exact per-step latency quantiles, where money stops and for how long; filters, split by
attribute, the API's errors."""
import datetime as dt
import itertools
from decimal import Decimal

import pytest

from collector.rows import EVENT_COLUMNS, EventRow
from revwatch.journeys.cache import InstanceCache
from revwatch.journeys.funnel import funnel

M = dt.timedelta(minutes=1)
_ids = itertools.count()
STEPS = ["contract.signed", "invoice.created", "payment.settled", "payment.posted", "payment.reconciled"]
CFG = """
journeys:
  revenue: {start: contract.signed, end: payment.reconciled,
            milestones: [invoice.created, payment.settled, payment.posted]}
"""
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
T0 = NOW - dt.timedelta(hours=3)


def ev(cid, typ, at, amount=None, cur="", **attrs):
    return list(EventRow(EventId=f"f{next(_ids)}", Type=typ, CorrelationId=cid, OccurredAt=int(at.timestamp() * 1000),
                         Source=attrs.pop("source", "billing"), Amount=amount, Currency=cur if amount else "",
                         Attributes=attrs))


def seed(store):
    rows = [
        ev("R1", "contract.signed", T0, "100.00", "EUR", gateway="stripe"),
        ev("R1", "invoice.created", T0 + 10 * M, "100.00", "EUR"),
        ev("R1", "payment.settled", T0 + 30 * M, "100.00", "EUR"),
        ev("R1", "payment.posted", T0 + 40 * M), ev("R1", "payment.reconciled", T0 + 50 * M),
        ev("R2", "contract.signed", T0, "200.00", "EUR", gateway="stripe"),
        ev("R2", "invoice.created", T0 + 20 * M, "200.00", "EUR"),
        ev("R2", "payment.settled", T0 + 60 * M, "150.00", "EUR"),          # partial: 50 EUR leak
        ev("R2", "payment.posted", T0 + 70 * M),                              # waits for reconciliation
        ev("R3", "contract.signed", T0, "50.00", "USD", gateway="stripe"),
        ev("R3", "invoice.created", T0 + 5 * M, "50.00", "USD"),             # never paid
        ev("R4", "contract.signed", T0, "300.00", "EUR", gateway="adyen"),   # never invoiced
        ev("R5", "contract.signed", T0, gateway="adyen"),                    # no amounts at all
        ev("R5", "invoice.created", T0 + 15 * M), ev("R5", "payment.settled", T0 + 25 * M),
        ev("R5", "payment.posted", T0 + 35 * M), ev("R5", "payment.reconciled", T0 + 45 * M),
        ev("R6", "contract.signed", NOW - dt.timedelta(hours=6), "999.00", "EUR"),   # started before `since`
    ]
    store.insert("events", rows, EVENT_COLUMNS)


def eur(x):
    return {"EUR": Decimal(x)}


@pytest.fixture(params=["sql", "instance cache"])
def cache(request, store, make_config):
    """Both paths of `funnel`: raw rows grouped in SQL, and the journey instance cache (revwatch/journeys/cache.py)."""
    return InstanceCache(store, make_config(CFG).journeys) if request.param == "instance cache" else None


def test_funnel_hand_counts(store, make_config, cache):
    seed(store)
    cfg = make_config(CFG)
    (f,) = funnel(store, cfg.journeys, "revenue", NOW - dt.timedelta(hours=4), NOW, now=NOW, cache=cache)
    s = {x.step: x for x in f.steps}
    assert [x.step for x in f.steps] == STEPS
    assert [x.reached for x in f.steps] == [5, 4, 3, 3, 2]
    assert [x.dropped for x in f.steps] == [0, 1, 1, 0, 1]
    assert s["contract.signed"].money == {"EUR": Decimal("600.00"), "USD": Decimal("50.00")}
    assert s["invoice.created"].money == {"EUR": Decimal("300.00"), "USD": Decimal("50.00")}
    assert s["payment.settled"].money == eur("250.00")           # own amounts: the partial payment shows
    assert s["payment.posted"].money == eur("300.00")            # no own amount: the start amount
    assert s["payment.reconciled"].money == eur("100.00")
    assert s["invoice.created"].conversion == 0.8 and s["payment.reconciled"].from_start == 0.4
    # latency, exact quantile = sorted value at floor(q·n): signed→invoice [300, 600, 900, 1200]
    assert s["invoice.created"].latency_seconds == {"p50": 900.0, "p95": 1200.0, "p99": 1200.0}
    assert s["payment.settled"].latency_seconds == {"p50": 1200.0, "p95": 2400.0, "p99": 2400.0}
    assert s["contract.signed"].latency_seconds == {}
    # where money stops: R4 waits for its invoice, R3 for payment, R2 for reconciliation
    assert (s["invoice.created"].stopped, s["invoice.created"].stopped_money) == (1, eur("300.00"))
    assert (s["payment.settled"].stopped, s["payment.settled"].stopped_money) == (1, {"USD": Decimal("50.00")})
    assert (s["payment.reconciled"].stopped, s["payment.reconciled"].stopped_money) == (1, eur("200.00"))
    assert s["payment.reconciled"].waiting_seconds == {"p50": 3 * 3600 - 70 * 60.0, "max": 3 * 3600 - 70 * 60.0}
    assert s["payment.posted"].stopped == 0 and s["payment.posted"].stopped_money == {}


def test_funnel_filters_and_split(store, make_config, cache):
    seed(store)
    cfg = make_config(CFG)
    lo = NOW - dt.timedelta(hours=4)
    (f,) = funnel(store, cfg.journeys, "revenue", lo, NOW, {"gateway": "adyen"}, now=NOW, cache=cache)
    assert [x.reached for x in f.steps] == [2, 1, 1, 1, 1]
    split = {x.group: x for x in funnel(store, cfg.journeys, "revenue", lo, NOW, by="gateway", now=NOW, cache=cache)}
    assert set(split) == {"stripe", "adyen"} and [x.reached for x in split["stripe"].steps] == [3, 3, 2, 2, 1]
    (wide,) = funnel(store, cfg.journeys, "revenue", NOW - dt.timedelta(hours=7), NOW, now=NOW, cache=cache)
    assert wide.steps[0].reached == 6 and wide.steps[0].money["EUR"] == Decimal("1599.00")


def test_funnel_api(api_factory):
    api = api_factory(CFG)
    seed(api.ctx.store)
    since = (NOW - dt.timedelta(hours=4)).isoformat()
    doc = api.get("/api/v1/funnels/revenue", params={"since": since}).json()
    (f,) = doc["funnels"]
    assert f["started"] == 5 and f["completed"] == 2
    assert f["steps"][2]["money"] == {"EUR": "250.00"} and f["steps"][1]["stopped_money"] == {"EUR": "300.00"}
    doc = api.get("/api/v1/funnels/revenue", params={"since": since, "attr": "gateway:adyen"}).json()
    assert doc["funnels"][0]["started"] == 2
    assert api.get("/api/v1/funnels/nope").status_code == 404
    assert api.get("/api/v1/funnels/revenue", params={"attr": "gateway"}).json()["field"] == "attr"
    assert api.get("/api/v1/funnels/revenue", params={"since": "x"}).json()["field"] == "since"
    inverted = api.get("/api/v1/funnels/revenue", params={"since": NOW.isoformat(), "until": since}).json()
    assert inverted["since"] == inverted["until"] and inverted["funnels"][0]["started"] == 0   # an empty range
    long = api.get("/api/v1/funnels/revenue", params={"since": (NOW - dt.timedelta(days=400)).isoformat(),
                                                      "until": NOW.isoformat()}).json()
    assert long["range_cut"] and dt.datetime.fromisoformat(long["since"]) == NOW - dt.timedelta(days=93)
    cut = api.get("/api/v1/funnels/revenue", params={"since": long["since"], "until": NOW.isoformat()}).json()
    assert long["funnels"] == cut["funnels"] and not cut["range_cut"]  # the 93 days read end at `until`
    assert api.client.get("/api/v1/funnels/revenue").status_code == 401


def test_funnel_page(api_factory):
    api = api_factory(CFG)
    seed(api.ctx.store)
    r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui/funnels"}, follow_redirects=False)
    assert r.status_code == 303
    page = api.client.get("/ui/funnels?journey=revenue&range=24h")
    assert page.status_code == 200 and '<svg class="chart funnel"' in page.text
    assert "250.00 EUR" in page.text and "300.00 EUR" in page.text          # settled money; R4's money waiting
    assert "66.7% of previous" in page.text            # 24 h: R6 too, so 4 of 6 reach invoice.created
    split = api.client.get("/ui/funnels?journey=revenue&range=24h&by=gateway").text
    assert "gateway = adyen" in split and "gateway = stripe" in split
    assert api.client.get("/ui/funnels?journey=revenue&range=1y").json()["field"] == "range"
    assert api.client.get("/ui/funnels?journey=nope").json()["field"] == "journey"


def test_funnel_cli_json_matches_the_api(api_factory, monkeypatch):
    import json

    from typer.testing import CliRunner

    from revwatch.cli import journeys as cli_journeys
    from revwatch.cli.app import app as cli_app
    from revwatch.cli.target import LocalTarget
    api = api_factory(CFG)
    seed(api.ctx.store)
    monkeypatch.setattr(cli_journeys, "open_target", lambda cfg: LocalTarget(api.ctx.store, api.ctx.config))
    monkeypatch.setattr(cli_journeys, "load_cli_config", lambda path: api.ctx.config)
    since, until = (NOW - dt.timedelta(hours=4)).isoformat(), NOW.isoformat()
    res = CliRunner().invoke(cli_app, ["journeys", "funnel", "revenue", "--since", since, "--until", until, "--json"])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout)["funnels"]
    via_api = api.get("/api/v1/funnels/revenue", params={"since": since, "until": until}).json()["funnels"]
    assert cli == via_api and cli[0]["steps"][2]["money"] == {"EUR": "250.00"}
    text = CliRunner().invoke(cli_app, ["journeys", "funnel", "revenue", "--since", since, "--until", until]).stdout
    assert "payment.settled" in text and "250.00 EUR" in text
    bad = CliRunner().invoke(cli_app, ["journeys", "funnel", "revenue", "--attr", "gateway"])
    assert bad.exit_code == 2 and "KEY:VALUE" in bad.output


def _series(text: str, family: str) -> dict[tuple, float]:
    """{sorted label pairs: value} of one family in a Prometheus exposition."""
    import re
    out = {}
    for labels, value in re.findall(rf"^{family}\{{(.*)\}} (\S+)$", text, re.M):
        out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels)))] = float(value)
    return out


def test_metrics_funnels_and_attribution_are_the_api_numbers(api_factory):
    """One truth: the evaluator's summary pass computes the last day's funnel of every journey and the attribution
    of every journey SLO with bad events once; /metrics shows those numbers, equal to the API's funnel of the same
    day and the API's attribution (the same instances: every fixture instance started well inside both windows)."""
    api = api_factory(CFG + """
slos:
  - {name: rev, journey: revenue, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 40m}}
""")
    seed(api.ctx.store)
    api.ctx.slo.evaluate_and_cache()
    text = api.get("/metrics").text
    doc = api.get("/api/v1/funnels/revenue", params={"since": (NOW - dt.timedelta(days=1)).isoformat()}).json()
    [f] = doc["funnels"]
    assert _series(text, "revwatch_journey_funnel_reached") == {
        (("journey", "revenue"), ("step", s["step"])): s["reached"] for s in f["steps"]}
    assert f["steps"][1]["reached"] == 4 and f["steps"][-1]["reached"] == 2          # the hand counts above
    assert _series(text, "revwatch_journey_funnel_stopped") == {
        (("journey", "revenue"), ("step", s["step"])): s["stopped"] for s in f["steps"]}
    assert _series(text, "revwatch_journey_funnel_conversion_ratio") == {
        (("journey", "revenue"), ("step", s["step"])): pytest.approx(s["conversion"]) for s in f["steps"]
        if s["conversion"] is not None}
    money = {(("currency", c), ("journey", "revenue"), ("kind", kind), ("step", s["step"])): float(Decimal(v))
             for s in f["steps"] for kind, key in (("reached", "money"), ("stopped", "stopped_money"))
             for c, v in s[key].items()}
    assert money and _series(text, "revwatch_journey_funnel_amount") == money
    p95 = {k: v for k, v in _series(text, "revwatch_journey_funnel_step_latency_seconds").items() if ("q", "0.95") in k}
    assert p95 == {(("journey", "revenue"), ("q", "0.95"), ("step", s["step"])): s["latency_seconds"]["p95"]
                   for s in f["steps"] if s["latency_seconds"]}
    att = api.get("/api/v1/slos/rev/attribution").json()
    bad = _series(text, "revwatch_slo_attribution_bad")
    assert bad == {(("group", ""), ("kind", kind), ("slo", "rev"), ("step", st["step"])): st[kind]
                   for st in att["steps"] for kind in ("stuck", "late")}
    assert sum(bad.values()) == att["instances"]["bad"] > 0
    assert _series(text, "revwatch_slo_attribution_bad_amount") == {
        (("currency", c), ("group", ""), ("slo", "rev"), ("step", st["step"])): float(Decimal(v))
        for st in att["steps"] for c, v in st["money"].items()}
