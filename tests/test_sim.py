"""Simulator: determinism by seed, fault schedules, each fault visibly moving its SLI or detector, and ground truth
consistent with what lands in the store (through the real HTTP + OTLP path)."""
import datetime as dt
import json

import pytest
import yaml

from collector.events import validate_event
from revwatch.config import Config
from revwatch.sim.demo import DEMO_CONFIG
from revwatch.sim.faults import FaultError, load_scenario, parse_fault
from revwatch.sim.model import Business
from revwatch.sim.sender import Sender
from slo.engine import SloEngine
from tests.support.servers import live_server
from tests.support.sim_data import END, START, load



def run(seed=3, faults=(), rate=200.0, customers=200):
    b = Business(seed, START, customers, rate, [parse_fault(f, START, END) for f in faults])
    events, spans = b.advance(END)
    return b, events, spans


def test_same_seed_same_business_other_seed_differs():
    _, e1, s1 = run(seed=3, faults=["posting_delay@day1+6h/2h"])
    b2, e2, s2 = run(seed=3, faults=["posting_delay@day1+6h/2h"])
    assert json.dumps(e1) == json.dumps(e2) and len(e1) > 1000
    assert [(s.service, s.name, s.start) for s in s1] == [(s.service, s.name, s.start) for s in s2]
    _, e3, _ = run(seed=4)
    assert json.dumps(e1) != json.dumps(e3)
    assert all(e1[i]["occurred_at"] <= e1[i + 1]["occurred_at"] for i in range(len(e1) - 1))
    assert b2.truth and all(t["fault"] == "posting_delay" for t in b2.truth)


def test_events_are_valid_and_linked():
    _, events, spans = run()
    assert all(validate_event(e)[1] is None for e in events)          # every event passes the API's validation
    types = {e["type"] for e in events}
    assert {"subscription.renewed", "invoice.created", "invoice.posted", "payment.settled", "payment.posted",
            "payment.reconciled", "customer.created", "subscription.activated"} <= types
    inv_refs = {e["attributes"]["invoice_ref"] for e in events if e["type"] == "invoice.created"}
    pay_refs = {e["attributes"].get("invoice_ref") for e in events if e["type"] == "payment.settled"}
    assert pay_refs <= inv_refs                                      # payments point at real invoices
    assert {s.service for s in spans} >= {"odoo", "crm-sync", "billing-webhooks"}


def test_fault_specs():
    f = parse_fault("posting_delay@day2+6h30m/2h:rate=0.5", START, END)
    assert f.start == START + dt.timedelta(days=1, hours=6, minutes=30) and f.end - f.start == dt.timedelta(hours=2)
    assert f.rate == 0.5
    assert parse_fault("webhook_loss@-45m/45m", START, END).start == END - dt.timedelta(minutes=45)
    for bad in ("nope@day1", "posting_delay", "posting_delay@day0", "posting_delay@day1/xx",
                "posting_delay@day1:rate=2", "posting_delay@day1:speed=1"):
        with pytest.raises(FaultError):
            parse_fault(bad, START, END)


def test_yaml_scenario(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump([{"fault": "queue_backlog", "at": "day1+2h", "duration": "3h", "rate": 0.3}]))
    (f,) = load_scenario(p, START, END)
    assert (f.name, f.rate, f.end - f.start) == ("queue_backlog", 0.3, dt.timedelta(hours=3))
    p.write_text("- {at: day1}")
    with pytest.raises(FaultError, match="needs 'fault'"):
        load_scenario(p, START, END)


def sli(store, name, group_sum=True):
    cfg = Config.model_validate({**yaml.safe_load(DEMO_CONFIG), "store": {"dsn": store.dsn,
                                                                            "database": store.database}})
    res = [r for r in SloEngine(store, cfg).evaluate(END) if r.spec.name == name]
    good = sum(r.windows["3d"].good for r in res)
    total = sum(r.windows["3d"].total for r in res)
    return good / total


FAULT_SLI = {"webhook_loss": "payment-posting-15m", "posting_delay": "payment-posting-15m",
             "gateway_latency": "gateway-latency-2s", "crm_sync_errors": "crm-sync-errors",
             "queue_backlog": "renewal-invoiced-1h", "recon_missing_ref": "payment-reconciled-1h",
             "recon_partial": "payment-reconciled-1h", "recon_fx_fee": "payment-reconciled-1h",
             "recon_duplicate": "payment-reconciled-1h"}


@pytest.fixture(scope="module")
def baseline(chdb_dsn):
    from revwatch.store import open_store
    store = open_store(chdb_dsn, "sim_baseline")
    _, events, spans = run()
    load(store, events, spans)
    return {name: sli(store, name) for name in set(FAULT_SLI.values())}


@pytest.mark.parametrize("fault", sorted(FAULT_SLI))
def test_each_fault_moves_its_sli(store, baseline, fault):
    b, events, spans = run(faults=[f"{fault}@day1+4h/12h"])
    load(store, events, spans)
    affected = {t["correlation_id"] for t in b.truth}
    assert len(affected) >= 5, f"{fault} hit only {len(affected)} transactions"
    name = FAULT_SLI[fault]
    assert sli(store, name) < baseline[name] - 0.01, (fault, sli(store, name), baseline[name])


def test_price_misconfig_is_found_by_billing_variance(store):
    from anomaly.billing import scan_billing
    from anomaly.findings import list_findings
    b, events, spans = run(faults=["price_misconfig@day1+4h/6h"])
    load(store, events, spans)
    invoiced = {e["correlation_id"] for e in events if e["type"] == "invoice.created"}
    truth = {t["correlation_id"] for t in b.truth if t["fault"] == "price_misconfig"} & invoiced
    scan_billing(store)
    found = {f["correlation_id"] for f in list_findings(store, kind="billing_variance", limit=10**6)[0]}
    assert truth and found == truth                      # every mispriced invoice, and nothing else


def test_duplicate_webhooks_change_nothing_but_the_duplicate_count(api_factory):
    api = api_factory(DEMO_CONFIG)
    b = Business(5, START, 100, 60.0, [parse_fault("duplicate_webhook@day1+1h/20h", START, END)])
    with live_server(api.client.app) as base:
        sender = Sender(base, api.keys["ingest"], seed=5)
        events, spans = b.advance(END)
        sender.events(events)
        sender.spans(spans)
        sender.close()
    api.drain()
    dup_truth = [t for t in b.truth if t["fault"] == "duplicate_webhook"]
    assert dup_truth and sender.duplicates == len(dup_truth)
    store = api.ctx.store
    unique = len({e["event_id"] for e in events})
    assert store.query(f"SELECT uniqExact(EventId) FROM {store.table('events')}").scalar() == unique
    # ground truth matches the store: every faulted correlation ID has exactly one settlement
    cids = [t["correlation_id"] for t in dup_truth]
    n = store.query(f"SELECT CorrelationId, uniqExact(EventId) FROM {store.table('events')} "
                    f"WHERE Type = 'payment.settled' AND CorrelationId IN {{c:Array(String)}} GROUP BY CorrelationId",
                    {"c": cids}).rows
    assert sorted(c for c, k in n if k == 1) == sorted(cids)
    assert store.query(f"SELECT count() FROM {store.table('spans')}").scalar() == len(spans)
