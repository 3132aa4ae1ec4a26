"""Anomaly detection: reconciliation risk learned from history, the API, metrics and the CLI."""
import datetime as dt
import json

from anomaly.detectors import reconciliation_risk
from revwatch.sim.faults import parse_fault
from revwatch.sim.model import Business
from tests.conftest import revwatch_cmd
from tests.test_sim import END, START, load


def business(faults, seed=11):
    b = Business(seed, START, 200, 200.0, [parse_fault(f, START, END) for f in faults])
    events, spans = b.advance(END)
    return b, events, spans


def test_reconciliation_risk_is_learned_and_explained(store):
    # missing references all day: history has failures to learn from, and the last hour's payments are still open
    b, events, spans = business(["recon_missing_ref@day1+0h/24h:rate=0.3"])
    load(store, events, spans)
    findings, model = reconciliation_risk(store, START - dt.timedelta(days=1))
    assert model["model"] == "logistic_regression" and model["failures_in_history"] > 10
    assert model["train_accuracy"] > 0.9
    flagged = {f["correlation_id"]: f for f in findings}
    outcomes = {e["correlation_id"] for e in events if e["type"].startswith("payment.reconcil")}
    settled = {e["correlation_id"] for e in events if e["type"] == "payment.settled"}
    open_missing = {t["correlation_id"] for t in b.truth if t["correlation_id"] not in outcomes} & settled
    assert open_missing, "the fixture should leave some faulted payments without an outcome yet"
    assert open_missing <= set(flagged)                         # every open payment without a reference is flagged
    assert all("no invoice reference" in flagged[c]["reasons"][0] for c in open_missing)
    healthy_open = settled - outcomes - open_missing
    assert len(set(flagged) & healthy_open) <= max(1, len(healthy_open) // 10)   # few false alarms


def test_rules_when_history_has_one_class(store):
    b, events, spans = business([], seed=12)
    decided = {e["correlation_id"] for e in events if e["type"].startswith("payment.reconcil")}
    for e in events:                                           # an open payment without its invoice reference
        if e["type"] == "payment.settled" and e["correlation_id"] not in decided:
            e["attributes"].pop("invoice_ref", None)
            break
    load(store, events, spans)
    findings, model = reconciliation_risk(store, START - dt.timedelta(days=1))
    assert model["model"] == "rules" and model["failures_in_history"] == 0
    assert findings and "no failure/success history" in findings[0]["reasons"][-1]


def test_scan_api_metrics_scopes(api_factory):
    api = api_factory()
    b, events, spans = business(["price_misconfig@day1+2h/4h", "recon_partial@day1+0h/24h:rate=0.3"], seed=13)
    load(api.ctx.store, events, spans)
    assert api.post("/api/v1/anomalies/scan", scope="read").status_code == 403
    summary = api.post("/api/v1/anomalies/scan", scope="admin").json()
    truth = {t["correlation_id"] for t in b.truth if t["fault"] == "price_misconfig"}
    assert summary["findings"]["billing_variance"] == len(truth)
    items = api.get("/api/v1/anomalies", params={"kind": "billing_variance", "limit": 1000}).json()["items"]
    assert {i["correlation_id"] for i in items} == truth
    top = items[0]
    assert top["ref"].startswith("INV/") and 0 < top["score"] <= 1 and "expected" in top["reasons"][0]
    assert top["details"]["billed"] != top["details"]["expected"]
    again = api.post("/api/v1/anomalies/scan", scope="admin").json()          # re-scan replaces, not duplicates
    assert again["findings"]["billing_variance"] == len(truth)
    assert len(api.get("/api/v1/anomalies", params={"kind": "billing_variance", "limit": 1000}).json()["items"]) \
        == len(truth)
    assert api.get("/api/v1/anomalies", params={"kind": "nope"}).status_code == 400
    assert api.get("/api/v1/anomalies", params={"since": "yesterday"}).json()["field"] == "since"
    text = api.get("/metrics").text
    assert f'revwatch_anomalies_open{{kind="billing_variance"}} {float(len(truth))}' in text


def test_cli_anomaly_scan_json(tmp_path):
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data'}}\n")
    r = revwatch_cmd("anomaly", "scan", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["summary"]["findings"] == {} and doc["top"] == []
