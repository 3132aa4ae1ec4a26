"""Burn attribution (slo.attribution): failing step, over-represented attributes, oldest stuck examples, money per
currency and customers — for one group of a group_by SLO — and the API route the web UI reads."""
import datetime as dt
import decimal

from collector.rows import EVENT_COLUMNS, EventRow

CFG = """
journeys:
  p2p: {start: payment.settled, milestones: [payment.matched], end: payment.posted}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m},
     group_by: [region]}
alerts: {public_url: "https://rw.example"}
"""


def ev(cid, typ, minutes_ago, gateway, amount=None, currency="", region="eu", **attrs):
    now = dt.datetime.now(dt.timezone.utc)
    return list(EventRow(EventId=f"{cid}-{typ}", Type=typ, CorrelationId=cid,
                         OccurredAt=int((now - dt.timedelta(minutes=minutes_ago)).timestamp() * 1000), Source=gateway,
                         Amount=decimal.Decimal(amount) if amount else None, Currency=currency,
                         Attributes={"gateway": gateway, "region": region, **attrs}))


def test_attribution_of_one_group(api_factory):
    api = api_factory(CFG)
    rows = []
    for i in range(10):                             # on time, mostly stripe
        gw = "stripe" if i < 8 else "adyen"
        rows += [ev(f"ok{i}", "payment.settled", 60, gw, "10", "EUR"), ev(f"ok{i}", "payment.matched", 59, gw),
                 ev(f"ok{i}", "payment.posted", 55, gw)]
    for i in range(4):                              # matched, never posted: stuck waiting for payment.posted
        rows += [ev(f"st{i}", "payment.settled", 50 + i, "adyen", "100.25", "EUR", customer_id=f"cus{i % 3}"),
                 ev(f"st{i}", "payment.matched", 49 + i, "adyen")]
    for i in range(2):                              # never matched, in USD
        rows += [ev(f"um{i}", "payment.settled", 45, "adyen", "7.50", "USD", customer_id="cus9")]
    for i in range(2):                              # late: posted 30 min after matching
        rows += [ev(f"lt{i}", "payment.settled", 90, "stripe", "1", "EUR"),
                 ev(f"lt{i}", "payment.matched", 89, "stripe"),
                 ev(f"lt{i}", "payment.posted", 59, "stripe")]
    rows += [ev("us0", "payment.settled", 300, "adyen", "999", "EUR", region="us")]   # another group: not counted
    api.ctx.store.insert("events", rows, EVENT_COLUMNS)
    r = api.get("/api/v1/slos/pp/attribution", params={"group": "eu"})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["group"] == "eu" and a["journey"] == "p2p"
    assert a["instances"]["started"] == 18 and a["instances"]["stuck"] == 6 and a["instances"]["late"] == 2
    # money per step, hand count: 4 × 100.25 EUR stuck + 2 × 1 EUR late; 2 × 7.50 USD stuck before matching
    assert a["steps"] == [{"step": "payment.posted", "after": "payment.matched", "stuck": 4, "late": 2,
                           "money": {"EUR": "403.00"}},
                          {"step": "payment.matched", "after": "payment.settled", "stuck": 2, "late": 0,
                           "money": {"USD": "15.00"}}]
    assert a["failing_step"] == "payment.posted" and a["failing_system"] == "adyen"
    assert a["money_at_risk"] == {"EUR": "401.00", "USD": "15.00"}
    assert a["money_bad"] == {"EUR": "403.00", "USD": "15.00"}
    assert a["money_started"] == {"EUR": "503.00", "USD": "15.00"}          # + 10 on-time × 10 EUR
    assert a["customers_affected"] == 4                  # cus0, cus1, cus2, cus9
    ex = a["oldest_stuck"]
    assert [e["correlation_id"] for e in ex][:4] == ["st3", "st2", "st1", "st0"] and ex[4]["correlation_id"] in \
        ("um0", "um1") and ex[4]["waiting_for"] == "payment.matched" and ex[4]["currency"] == "USD"
    assert ex[0]["amount"] == "100.25" and ex[0]["currency"] == "EUR" and ex[0]["waiting_for"] == "payment.posted"
    assert ex[0]["link"] == "https://rw.example/ui/journeys/st3" and ex[0]["overdue_seconds"] > 0
    gw = {(o["attribute"], o["value"]): o for o in a["over_represented"]}
    assert gw[("gateway", "adyen")]["bad"] == 6 and gw[("gateway", "adyen")]["lift"] == round((6 / 8) / (8 / 18), 2)
    assert gw[("gateway", "adyen")]["money"] == {"EUR": "401.00", "USD": "15.00"}   # its bad instances' money
    assert gw[("gateway", "adyen")]["bad_share"] == round(6 / 8, 4)
    assert ("source", "adyen") in gw and ("gateway", "stripe") not in gw
    assert ("customer_id", "cus0") not in gw           # identifiers are not explanations
    assert a["budget"]["remaining_ratio"] is not None
    assert api.get("/api/v1/slos/nope/attribution").status_code == 404
    us = api.get("/api/v1/slos/pp/attribution", params={"group": "us"}).json()
    assert us["instances"]["stuck"] == 1 and us["money_at_risk"] == {"EUR": "999.00"}


SPAN_CFG = """
slos:
  - {name: odoo-errors, objective: 0.99, window: 1d,
     sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
"""


def test_span_attribution_failing_step_and_lift(api_factory):
    from collector.rows import SPAN_COLUMNS, SpanRow
    api = api_factory(SPAN_CFG)
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    # 20 spans: 10 account.move (6 failing, all on db=prod-b), 10 res.partner (1 failing, db=prod-a)
    for i in range(20):
        name = "account.move" if i < 10 else "res.partner"
        bad = i < 6 or i == 10
        db = "prod-b" if i < 6 else "prod-a"
        rows.append(list(SpanRow(Timestamp=int((now - dt.timedelta(minutes=30 + i)).timestamp() * 1e9),
                                 TraceId=f"{i:032x}", SpanId=f"{i:016x}", SpanName=name, SpanKind="Client",
                                 ServiceName="odoo", SpanAttributes={"db": db}, Duration=10**6,
                                 StatusCode="Error" if bad else "Ok", CorrelationId=f"c{i}")))
    rows.append(rows[0])                                           # a re-delivered span counts once
    api.ctx.store.insert("spans", rows, SPAN_COLUMNS)
    a = api.get("/api/v1/slos/odoo-errors/attribution", params={"window": "2h"}).json()
    assert a["spans"]["total"] == 20 and a["spans"]["bad"] == 7
    assert a["failing_step"] == "account.move" and a["steps"][0] == {"step": "account.move", "bad": 6}
    over = {(o["attribute"], o["value"]): o for o in a["over_represented"]}
    # db=prod-b: 6 of 7 bad, 6 of 20 overall → lift (6/7)/(6/20)
    assert over[("db", "prod-b")]["lift"] == round((6 / 7) / (6 / 20), 2) and ("db", "prod-a") not in over
    assert a["money_at_risk"] == {}
    assert api.get("/api/v1/slos/odoo-errors/attribution", params={"window": "10m"}).json()["spans"]["total"] == 0
    assert api.get("/api/v1/slos/odoo-errors/attribution", params={"window": "x"}).json()["field"] == "window"


def test_steps_count_every_bad_instance_beyond_ten_thousand(store, make_config):
    """The steps of an attribution count every bad instance, in both paths: with 12,345 bad instances (more than
    the 10,000 the steps once sampled, oldest first) the stuck and late counts per step add up to the bad instances
    and their money to the bad money, to the cent; the cache and the SQL path give the same document."""
    from decimal import Decimal

    from slo.attribution import attribute
    from slo.engine import SloEngine
    rows = []
    for i in range(12_345):
        cid = f"b{i}"
        amount = f"{1 + i % 97}.{i % 100:02d}"
        rows.append(ev(cid, "payment.settled", 300 - (i % 240), "stripe", amount, "EUR"))
        if i % 3 == 0:                              # matched after 20 min, never posted: stuck at payment.posted
            rows.append(ev(cid, "payment.matched", 280 - (i % 240), "stripe"))
        elif i % 3 == 1:                            # matched after 1 min, posted 29 min later: late in posting
            rows.append(ev(cid, "payment.matched", 299 - (i % 240), "stripe"))
            rows.append(ev(cid, "payment.posted", 270 - (i % 240), "stripe"))
        # i % 3 == 2: never matched, stuck waiting for payment.matched
    store.insert("events", rows, EVENT_COLUMNS)
    engine = SloEngine(store, make_config(CFG))
    engine.evaluate(refresh=True)
    now = dt.datetime.now(dt.timezone.utc)
    docs = [attribute(engine, engine.specs[0], "eu", now=now, use_cache=c) for c in (True, False)]
    assert docs[0] == docs[1]
    doc = docs[0]
    assert doc["instances"]["bad"] == 12_345
    assert sum(st["stuck"] + st["late"] for st in doc["steps"]) == 12_345
    assert {st["step"]: (st["stuck"], st["late"]) for st in doc["steps"]} == {
        "payment.posted": (4_115, 4_115), "payment.matched": (4_115, 0)}
    step_money = sum(Decimal(v) for st in doc["steps"] for v in st["money"].values())
    assert step_money == Decimal(doc["money_bad"]["EUR"]) == sum(Decimal(f"{1 + i % 97}.{i % 100:02d}")
                                                                   for i in range(12_345))
