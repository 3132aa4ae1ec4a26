"""The demo's anomalies page shows real findings (issue #24): the demo's own business — its seed, days, rate and
every fault of revwatch.sim.demo — loaded straight into the store (no HTTP: tests/test_demo_truth.py runs the
whole `revwatch demo`), one scan, then what the API and the overview show.

The injected reconciliation breakers are open findings above the calibrated threshold because the demo's history
carries breakers of the same kinds with their outcomes (the risk model learns them, as it would from a real
business's past); the injected billing faults are billing-variance findings; nothing else is an open anomaly."""
from __future__ import annotations

import html
import re

from revwatch.sim import demo
from revwatch.sim.faults import VARIANCE_CAUSES
from revwatch.sim.run import build
from tests.support.sim_data import load

THRESHOLD = 0.5                                   # anomaly.risk_threshold, the default the demo runs with
# the words a finance lead reads first for each breaker, and the action it comes with
BREAKER_WORDS = {"missing_reference": ("the payment carries no invoice reference", "add its number"),
                 "partial_payment": ("short)", "ask "),
                 "duplicate_payment": ("already paid", "double payment")}


def every_page(api, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        doc = api.get("/api/v1/anomalies", params={**params, "limit": 200, **({"cursor": cursor} if cursor else {})})
        assert doc.status_code == 200, doc.text
        items += doc.json()["items"]
        cursor = doc.json()["next_cursor"]
        if not cursor:
            return items


def test_demo_injected_faults_are_the_open_findings_and_top_anomalies(api_factory):
    api = api_factory(demo.DEMO_CONFIG)
    business, _, _, end = build(demo.demo_params())
    events, spans = business.advance(end)
    load(api.ctx.store, events, spans)
    scan = api.post("/api/v1/anomalies/scan", scope="admin").json()
    assert scan["reconciliation_model"]["model"] and scan["reconciliation_model"]["retrained"], scan

    # every open payment keeps its score, with its status: open at or above the threshold, scored below it
    decided = {e["correlation_id"] for e in events if e["type"] in ("payment.reconciled",
                                                                   "payment.reconciliation_failed")}
    paid = {e["correlation_id"] for e in events if e["type"] in ("payment.received", "payment.settled")}
    scored = every_page(api, kind="reconciliation_risk", min_score=0)
    assert {i["correlation_id"] for i in scored} == paid - decided and len(scored) == len(paid - decided)
    assert all(i["status"] == ("open" if i["score"] >= THRESHOLD else "scored") for i in scored)

    # the injected breakers still open at the end of the backfill: each an open finding with money and an action
    cause = {p["correlation_id"]: p["cause"] for p in business.payments}
    injected = [i for i in scored if cause[i["correlation_id"]]]
    kinds = {cause[i["correlation_id"]] for i in injected}
    assert len(injected) >= 3 and {"missing_reference", "partial_payment"} <= kinds, injected
    for i in injected:
        words, action = BREAKER_WORDS[cause[i["correlation_id"]]]
        assert i["status"] == "open" and i["score"] >= THRESHOLD, i
        assert float(i["details"]["money_at_risk"]) > 0
        assert any(words in r for r in i["reasons"]), i["reasons"]
        assert action in i["details"]["what_to_check"], i["details"]["what_to_check"]
    # and nothing else: a payment nothing was done to is a score, never an open anomaly
    risky = [i for i in scored if i["status"] == "open"]
    assert {i["correlation_id"] for i in risky} == {i["correlation_id"] for i in injected}

    # every injected billing fault, and nothing else, is an open billing-variance finding with money and an action
    wrong = {t["correlation_id"] for t in business.truth if t["fault"] in VARIANCE_CAUSES}
    billing = every_page(api, kind="billing_variance", status="open")
    assert wrong and {i["correlation_id"] for i in billing} == wrong
    assert all(float(i["details"]["money_at_risk"]) > 0 and i["details"]["what_to_check"] for i in billing)
    assert scan["findings"] == {"billing_variance": len(billing), "reconciliation_risk": len(risky)}, scan

    # the overview's "top anomalies": the most money at risk among real findings, each saying what to check
    real = wrong | {i["correlation_id"] for i in injected}
    by_money = every_page(api, status="open", order="money")
    page = api.get("/ui/").text
    top = re.search(r"<h2>Top anomalies</h2>(.*?)</section>", page, re.S)
    assert top, page[:2000]
    panel = html.unescape(top.group(1))
    shown = re.findall(r'<a href="/ui/journeys/([^"]+)">', panel)
    assert shown == [i["correlation_id"] for i in by_money[:5]] and len(shown) == 5
    assert set(shown) <= real
    for i in by_money[:5]:
        assert not i["reasons"][0].startswith("nothing unusual") and i["details"]["what_to_check"] in panel
        assert i["kind"] == "billing_variance" or i["score"] >= THRESHOLD
    assert "nothing unusual" not in panel
