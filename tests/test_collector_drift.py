"""Schema drift per source and event type (collector/drift.py): a renamed field, a changed type, a new status
value, minor units sent as major and a new event type each raise a finding on the next scan, stored, listed and
acknowledged like anomalies; a stable source raises none; findings resolve when the shape is back."""
import datetime as dt

from collector.drift import scan_drift
from collector.rows import EVENT_COLUMNS, EventRow
from revwatch.server import drift_scan

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def ev(i, source, typ, at, attrs, amount="100.00", cur="EUR"):
    return list(EventRow(EventId=f"{source}-{typ}-{i}-{at.timestamp()}", Type=typ, CorrelationId=f"c{i}",
                         OccurredAt=int(at.timestamp() * 1000), Source=source, Amount=amount, Currency=cur,
                         Attributes=attrs))


def baseline(store, source="stripe"):
    rows = []
    for i in range(120):                       # 5 days before the recent window
        at = NOW - dt.timedelta(days=2, hours=i)
        rows.append(ev(i, source, "invoice.paid", at, {"customer_id": f"cus_{i}", "status": ["paid", "open"][i % 2],
                                                        "quantity": str(i % 3 + 1)}, f"{100 + i}.00"))
    store.insert("events", rows, EVENT_COLUMNS)


def test_each_kind_of_drift_is_found_with_examples_and_nothing_on_a_stable_source(api):
    store = api.ctx.store
    baseline(store, "stripe")
    baseline(store, "steady")
    recent = []
    for i in range(40):
        at = NOW - dt.timedelta(minutes=10 * i + 5)
        # the vendor renamed customer_id → customer, sends quantity as words, added a status, sends cents
        recent.append(ev(1000 + i, "stripe", "invoice.paid", at,
                         {"customer": f"cus_{i}", "status": "uncollectible" if i == 3 else "paid",
                          "quantity": "one"}, f"{(100 + i) * 100}.00"))
        recent.append(ev(2000 + i, "steady", "invoice.paid", at,
                         {"customer_id": f"cus_{i}", "status": "paid", "quantity": "2"}, f"{100 + i}.00"))
    recent.append(ev(9, "stripe", "invoice.voided", NOW - dt.timedelta(hours=1), {}, None, ""))
    store.insert("events", recent, EVENT_COLUMNS)
    found, judged = scan_drift(store, NOW)
    by = {(f.source, f.type, f.what, f.attribute): f for f in found}
    assert set(by) == {("stripe", "invoice.paid", "field_missing", "customer_id"),
                       ("stripe", "invoice.paid", "type_changed", "quantity"),
                       ("stripe", "invoice.paid", "new_value", "status"),
                       ("stripe", "invoice.paid", "amount_scale", "EUR"),
                       ("stripe", "invoice.voided", "new_type", "")}, [f.reason for f in found]
    missing = by[("stripe", "invoice.paid", "field_missing", "customer_id")]
    assert missing.count == 40 and len(missing.examples) == 3 and "100.0 % of 120" in missing.reason
    assert by[("stripe", "invoice.paid", "new_value", "status")].examples == ["uncollectible"]
    assert "from 159.5 to 11950 (×74.9)" in by[("stripe", "invoice.paid", "amount_scale", "EUR")].reason
    assert "steady|invoice.paid|field_missing|customer_id" in judged            # judged, and fine
    # stored as anomaly findings: listed, acknowledged, resolved when the shape is back
    assert drift_scan(store)["new"] == 5
    items = api.get("/api/v1/anomalies", params={"kind": "schema_drift"}).json()["items"]
    assert len(items) == 5 and all(x["status"] == "open" for x in items)
    one = next(x for x in items if x["details"]["drift"] == "field_missing")
    assert one["details"]["field"] == "customer_id" and one["details"]["examples"]
    assert api.post(f"/api/v1/anomalies/{one['id']}/ack", scope="admin").status_code == 200
    assert drift_scan(store)["new"] == 0
