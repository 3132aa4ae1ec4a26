"""Alertmanager webhook receiver: validation, business-impact enrichment, routing, the alert log."""
import datetime as dt

from fastapi import FastAPI, Request

from tests.conftest import live_server

CFG = """
journeys: {p2p: {start: payment.settled, end: payment.posted}}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
"""


def webhook(status="firing", slo="pp", severity="page"):
    return {"version": "4", "status": status, "receiver": "revwatch", "groupKey": "{}:{}", "alerts": [{
        "status": status, "labels": {"alertname": "RevwatchSLOBurnRatePage", "slo": slo, "severity": severity},
        "annotations": {"summary": "burning"}, "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"}]}


def test_enriched_with_stuck_money_and_routed(api_factory):
    got = []
    hook_app = FastAPI()

    @hook_app.post("/hook")
    async def hook(request: Request):
        got.append(await request.json())
        return {}

    with live_server(hook_app) as hook_base:
        api = api_factory(CFG + f"alerts: {{routes: [{{match: {{severity: page}}, webhook: '{hook_base}/hook'}}]}}\n")
        now = dt.datetime.now(dt.timezone.utc)
        s = api.ctx.store
        from collector.events import EVENT_COLUMNS
        s.insert("events", [[f"e{i}", "payment.settled", f"pay_{i}", int((now - dt.timedelta(minutes=40)).timestamp()
                                                                        * 1000), "stripe", "", __import__("decimal")
                              .Decimal("100.50"), "EUR", {}] for i in range(3)], EVENT_COLUMNS)
        r = api.post("/api/v1/alerts/alertmanager", json=webhook())
        assert r.status_code == 200 and r.json() == {"received": 1, "notified": 1, "notify_failures": []}
    impact = got[0]["impact"]
    assert impact["stuck_instances"] == 3 and impact["amount_at_risk"] == {"EUR": "301.50"}
    assert impact["budget_remaining_ratio"] < 0 and set(impact["stuck_examples"]) == {"pay_0", "pay_1", "pay_2"}
    log = api.get("/api/v1/alerts").json()["items"]
    assert log[0]["slo"] == "pp" and log[0]["annotations"]["impact_stuck_instances"] == "3"
    assert api.post("/api/v1/alerts/alertmanager", json=webhook(status="resolved")).json()["received"] == 1


def test_bad_webhooks_are_400_and_scope(api_factory):
    api = api_factory(CFG)
    assert api.post("/api/v1/alerts/alertmanager", json={"status": "firing"}).json()["field"] == "alerts"
    bad = webhook()
    bad["alerts"][0]["status"] = "exploding"
    assert api.post("/api/v1/alerts/alertmanager", json=bad).status_code == 400
    bad = webhook()
    bad["alerts"][0]["startsAt"] = "yesterday"
    assert api.post("/api/v1/alerts/alertmanager", json=bad).json()["field"] == "alerts.0.startsAt"
    assert api.post("/api/v1/alerts/alertmanager", content=b"[", headers={"Content-Type": "application/json"}
                    ).status_code == 400
    assert api.post("/api/v1/alerts/alertmanager", json=webhook(), scope="read").status_code == 403
    r = api.post("/api/v1/alerts/alertmanager", json=webhook(slo="unknown"))
    assert r.status_code == 200 and r.json()["received"] == 1
