"""Business events API: per-item validation, exact decimals, NDJSON, duplicates counted once."""
import datetime as dt
import json
from decimal import Decimal

import pytest


def ev(i, **kw):
    base = {"event_id": f"evt_{i}", "type": "payment.settled", "correlation_id": f"pay_{i}",
            "occurred_at": "2026-11-23T10:15:02.120Z", "source": "stripe", "journey": "payment_to_posting",
            "amount": "129.00", "currency": "EUR", "attributes": {"invoice_ref": "INV/2026/00042"}}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not ...}


def stored(api):
    api.drain()
    return api.ctx.store.query(f"SELECT EventId, Type, CorrelationId, OccurredAt, Amount, Currency, Attributes "
                               f"FROM {api.ctx.store.table('events')} ORDER BY EventId LIMIT 1 BY EventId").dicts()


def test_valid_events_are_stored_exactly(api):
    r = api.post("/api/v1/events", json=[ev(1), ev(2, amount="0.010000001", currency=...,
                                                     occurred_at="2026-11-23T11:15:02+01:00")])
    assert r.status_code == 200 and r.json() == {"accepted": 2, "duplicates": 0, "conflicts": [], "rejected": []}
    rows = stored(api)
    assert rows[0]["Amount"] == Decimal("129.00") and rows[0]["Currency"] == "EUR"
    assert rows[1]["Amount"] == Decimal("0.010000001")                  # exact, no float rounding
    assert rows[1]["OccurredAt"] == dt.datetime(2026, 11, 23, 10, 15, 2)  # offset normalised to UTC
    assert rows[0]["Attributes"] == {"invoice_ref": "INV/2026/00042"}


@pytest.mark.parametrize("item, field, text", [
    (ev(1, event_id=...), "event_id", "required"),
    (ev(1, type=...), "type", "required"),
    (ev(1, correlation_id=""), "correlation_id", "required"),
    (ev(1, source=7), "source", "must be a string"),
    (ev(1, occurred_at="2026-01-01T00:00:00"), "occurred_at", "no timezone"),
    (ev(1, occurred_at="yesterday"), "occurred_at", "RFC 3339"),
    (ev(1, amount=1.5), "amount", "not a JSON number"),
    (ev(1, amount="1,50"), "amount", "decimal string"),
    (ev(1, amount="1e3"), "amount", "decimal string"),
    (ev(1, amount="129.00\n"), "amount", "decimal string"),     # `$` let these through; ClickHouse then
    (ev(1, amount="\u0661\u0662\u0663"), "amount", "decimal string"),  # refused the row (Arabic-Indic digits)
    (ev(1, currency="euro"), "currency", "ISO 4217"),
    (ev(1, currency="EUR\n"), "currency", "ISO 4217"),
    (ev(1, type="payment.settled\n"), "type", "noun.verb"),
    (ev(1, type="PaymentSettled"), "type", "noun.verb"),
    (ev(1, attributes={"x": {"nested": 1}}), "attributes.x", "must be a string"),
    (ev(1, colour="red"), "colour", "unknown field"),
    ("just a string", None, "JSON object"),
])
def test_each_bad_item_is_rejected_naming_the_field(api, item, field, text):
    r = api.post("/api/v1/events", json=[ev(100), item])
    assert r.status_code == 200, r.text               # the good item is still accepted
    body = r.json()
    assert body["accepted"] == 1 and len(body["rejected"]) == 1
    rej = body["rejected"][0]
    assert rej["index"] == 1 and text in rej["error"] and rej.get("field") == field


def test_all_rejected_is_400_with_error_and_field(api):
    r = api.post("/api/v1/events", json=[ev(1, amount=2.5)])
    assert r.status_code == 400
    assert r.json()["field"] == "amount" and r.json()["rejected"][0]["index"] == 0
    for body in (b"nope", b"", b'"str"', b"{"):
        r = api.post("/api/v1/events", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"], body


def test_ndjson_and_unknown_types(api):
    lines = "\n".join(json.dumps(ev(i, type="custom.thing_happened")) for i in range(3)) + "\n{broken\n"
    r = api.post("/api/v1/events", content=lines, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200
    assert r.json()["accepted"] == 3 and r.json()["rejected"][0]["index"] == 3
    assert {x["Type"] for x in stored(api)} == {"custom.thing_happened"}


def test_redelivery_counted_once_in_reply_store_and_lookup(api):
    batch = [ev(i) for i in range(10)] + [ev(3)]                   # a duplicate inside the request too
    r1 = api.post("/api/v1/events", json=batch).json()
    assert r1 == {"accepted": 10, "duplicates": 1, "conflicts": [], "rejected": []}
    r2 = api.post("/api/v1/events", json=batch[:5]).json()          # re-delivered while in memory
    assert r2 == {"accepted": 0, "duplicates": 5, "conflicts": [], "rejected": []}
    api.drain()
    api.ctx.intake.recent_events = type(api.ctx.intake.recent_events)(100)   # as after a restart:
    assert api.ctx.intake.remember_stored(3600) == 10                        # rebuilt from event_keys
    r3 = api.post("/api/v1/events", json=batch[5:8]).json()
    assert r3 == {"accepted": 0, "duplicates": 3, "conflicts": [], "rejected": []}
    assert len(stored(api)) == 10
    raw = api.ctx.store.query(f"SELECT count() FROM {api.ctx.store.table('events')}").scalar()
    assert raw == 10
    doc = api.get("/api/v1/journeys/pay_3").json()
    assert doc["counts"]["events"] == 1


def test_readers_deduplicate_what_ingest_could_not_see(api):
    """Two copies that reached the store (e.g. concurrent collectors) still count once everywhere."""
    from collector.events import EVENT_COLUMNS, validate_event
    from collector.rowcodec import event_rows_for_insert
    row = validate_event(ev(77))[0]
    for source in ("collector-a", "collector-b"):    # identical blocks would be dropped by insert dedup
        copy = list(row)
        copy[4] = source
        api.ctx.store.insert("events", event_rows_for_insert([copy]), EVENT_COLUMNS)
    assert api.ctx.store.query(f"SELECT count() FROM {api.ctx.store.table('events')}").scalar() == 2
    assert api.get("/api/v1/journeys/pay_77").json()["counts"]["events"] == 1
    found = api.get("/api/v1/journeys", params={"attr": "invoice_ref:INV/2026/00042"}).json()["items"]
    assert found[0]["events"] == 1


def test_amounts_come_back_exactly_as_sent(api):
    amounts = ["129.00", "0.10", "-5.500", "1000000", "0.000000001"]
    r = api.post("/api/v1/events",
                 json=[ev(200 + i, correlation_id="pay_amt", amount=a) for i, a in enumerate(amounts)])
    assert r.json()["accepted"] == 5
    api.drain()
    doc = api.get("/api/v1/journeys/pay_amt").json()
    got = sorted(x["amount"] for x in doc["timeline"] if x["kind"] == "event") if "timeline" in doc else None
    assert got == sorted(amounts), doc


def test_warnings_and_every_problem_of_an_item(api):
    future = "2099-01-01T00:00:00Z"
    r = api.post("/api/v1/events", json=[ev(300, type="payment.setled"), ev(301, occurred_at=future),
                                         ev(302, amount=1.5, currency="euro", colour="red")]).json()
    assert r["accepted"] == 2
    w = {(x["index"], x["field"]): x["warning"] for x in r["warnings"]}
    assert "'payment.settled'" in w[(0, "type")] and "future" in w[(1, "occurred_at")]
    rej = r["rejected"][0]
    assert rej["index"] == 2 and {p["field"] for p in rej["problems"]} == {"amount", "currency", "colour"}
