"""CloudEvents 1.0 at POST /api/v1/events, produced with the official `cloudevents` Python SDK: structured,
batched and binary modes; source+id idempotency; correlation ID from `correlationid`, `subject`, `traceparent`."""
import datetime as dt

import orjson
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from collector.cloudevents import event_id


def rows(api):
    api.drain()
    return api.ctx.store.query(
        f"SELECT EventId, Type, CorrelationId, toString(OccurredAt) AS at, Source, Journey, "
        f"toString(Amount) AS amount, Currency, Attributes FROM {api.ctx.store.table('events')} FINAL "
        f"ORDER BY at").dicts()


T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


def ce(i, **extra):
    attrs = {"type": "invoice.paid", "source": "/billing/chargebee", "id": f"evt-{i}", "time": T0 + dt.timedelta(
        minutes=i), "subject": f"inv_{i}"}
    data = extra.pop("data", {"amount": "49.90", "currency": "EUR", "plan": "pro", "lines": [{"sku": "A"}]})
    return CloudEvent(attributes={**attrs, **extra}, data=data)


def post(api, msg):
    return api.post("/api/v1/events", content=msg.body, headers=msg.headers)


def test_structured_mode_and_redelivery_is_a_duplicate(api):
    msg = to_structured_event(ce(1, correlationid="pay_1", journey="invoice_to_cash"))
    assert msg.headers["content-type"].startswith("application/cloudevents+json")
    r = post(api, msg)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = post(api, msg)                                     # the bus redelivers: same source + id
    assert r.json() == {"accepted": 0, "duplicates": 1, "conflicts": [], "rejected": [],
                        "warnings": r.json().get("warnings", [])}
    (row,) = rows(api)
    assert row["EventId"] == event_id("/billing/chargebee", "evt-1")
    assert row["CorrelationId"] == "pay_1" and row["Journey"] == "invoice_to_cash"          # correlationid wins
    assert row["Type"] == "invoice.paid" and row["Source"] == "/billing/chargebee"
    assert row["amount"] == "49.9" and row["Currency"] == "EUR" and row["at"].startswith("2026-03-01 09:01:00")
    assert row["Attributes"]["plan"] == "pro" and orjson.loads(row["Attributes"]["lines"]) == [{"sku": "A"}]
    assert row["Attributes"]["ce.id"] == "evt-1"


def test_batched_mode_with_one_bad_event(api):
    fmt = JSONFormat()
    good = [orjson.loads(fmt.write(ce(i))) for i in range(3)]
    bad = orjson.loads(fmt.write(ce(9, data={"amount": 12.5})))          # a JSON number amount
    body = orjson.dumps(good + [bad])
    r = api.post("/api/v1/events", content=body, headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["accepted"] == 3 and [x["index"] for x in doc["rejected"]] == [3]
    assert doc["rejected"][0]["field"] == "data.amount"
    assert [x["CorrelationId"] for x in rows(api)] == ["inv_0", "inv_1", "inv_2"]      # subject


def test_binary_mode_headers_and_traceparent(api):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = CloudEvent(attributes={"type": "payment.settled", "source": "stripe", "id": "evt_3",
                                   "time": T0, "traceparent": tp, "tenant": "acme eu",
                                   "datacontenttype": "application/json"},
                       data={"amount": 1250, "currency": "JPY"})
    msg = to_binary_event(event)
    assert msg.headers["ce-specversion"] == "1.0" and msg.headers["content-type"] == "application/json"
    r = post(api, msg)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    (row,) = rows(api)
    assert row["CorrelationId"] == "4bf92f3577b34da6a3ce929d0e0e4736"                    # no correlationid/subject
    assert row["amount"] == "1250" and row["Currency"] == "JPY"
    assert row["Attributes"]["tenant"] == "acme eu" and row["Attributes"]["traceparent"] == tp


def test_problems_are_400_with_field(api):
    r = api.post("/api/v1/events", content=b'{"specversion": "1.0", "id": "x", "source": "s", "type": "a.b"}',
                 headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 400 and r.json()["field"] == "time"
    r = api.post("/api/v1/events", content=b'{"x": 1}',
                 headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = api.post("/api/v1/events", content=b"{", headers={"Content-Type": "application/json", "ce-specversion": "1.0",
                                                          "ce-id": "1", "ce-source": "s", "ce-type": "a.b",
                                                          "ce-time": "2026-01-01T00:00:00Z", "ce-subject": "c"})
    assert r.status_code == 400 and r.json()["field"] == "data"
    r = api.post("/api/v1/events", content=b"{}", headers={"Content-Type": "application/cloudevents+json",
                                                           "Authorization": "Bearer nope"})
    assert r.status_code == 401
