"""Named webhook sources (Stripe, Odoo URL token, generic HMAC) with JMESPath mappings, and dead letters + replay.

Example payloads: the Stripe Event and Invoice objects follow Stripe's API reference (docs.stripe.com/api/events/object,
docs.stripe.com/api/invoices/object, docs.stripe.com/api/charges/object); the signature scheme is Stripe's
"Verify webhook signatures manually" (docs.stripe.com/webhooks#verify-manually); the Odoo body is what
`ir.actions.server._run_action_webhook` (odoo/odoo 17.0) posts.
"""
import hashlib
import hmac
import json
import time

import pytest

from collector.currency import minor_to_decimal
from collector.sources import SourceRegistry, token_hash
from revwatch.config import Config

WHSEC_OLD, WHSEC_NEW = "whsec_test_old_0123456789", "whsec_test_new_abcdef"
ODOO_TOKEN = "odoo-url-token-7f3a9c"

CONFIG = f"""
sources:
  stripe-live:
    preset: stripe
    secrets: [{WHSEC_OLD}, {WHSEC_NEW}]
  erp:
    preset: odoo
    secrets: ["{token_hash(ODOO_TOKEN)}"]
    mapping:
      type: "join('.', [_model, state])"
      types: {{account.move.posted: invoice.posted, account.payment.paid: payment.posted}}
      event_id: "join(':', [_model, to_string(_id), state])"
      correlation_id: "payment_reference || name"
      occurred_at: write_date
      amount: "to_string(amount_total || amount)"
      currency: currency
      attributes: {{invoice_ref: name}}
  billing-bus:
    preset: hmac
    secrets: [bus-secret]
    header: X-Hub-Signature-256
    prefix: "sha256="
    mapping:
      events: "items"
      type: kind
      types: {{settled: payment.settled}}
      event_id: uid
      correlation_id: ref
      occurred_at: at_ms
      occurred_at_unit: ms
      amount: cents
      amount_unit: minor
      currency: cur
"""

INVOICE_PAID = {
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "api_version": "2024-06-20", "created": None,
    "data": {"object": {"id": "in_1MtHbELkdIwHu7ixl4OzzPMv", "object": "invoice", "account_country": "US",
                        "amount_due": 1099, "amount_paid": 1099, "currency": "usd", "customer": "cus_NeZwdNtLEOXuvB",
                        "number": "F7A7D3B1-0001", "status": "paid", "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
                        "total": 1099, "metadata": {}}},
    "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
    "type": "invoice.paid"}
CHARGE_JPY = {
    "id": "evt_3MmlLrLkdIwHu7ix0snN0B15", "object": "event", "created": None, "livemode": False,
    "data": {"object": {"id": "ch_3MmlLrLkdIwHu7ix0snN0B15", "object": "charge", "amount": 5000,
                        "amount_refunded": 0, "currency": "jpy", "customer": "cus_9s6XKzkNRiz8i3",
                        "invoice": "in_1MtHbELkdIwHu7ixl4OzzPMv", "metadata": {"correlation_id": "pay_jp_1"},
                        "paid": True, "status": "succeeded"}},
    "type": "charge.succeeded"}


# When the fixtures' events were created. A Stripe retry re-signs (a new `t`) but carries the same event, `created`
# included: deriving `created` from the signing time made a retry that crossed a second a different event (a
# conflict, not a duplicate — the CI failure of test_stripe_signed_payloads_map_with_the_preset).
CREATED = int(time.time()) - 2


def stripe_post(api, event, secret=WHSEC_NEW, t=None, name="stripe-live"):
    t = int(time.time()) if t is None else t
    event = {**event, "created": event.get("created") or CREATED}
    body = json.dumps(event).encode()
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return api.client.post(f"/api/v1/sources/{name}", content=body,
                           headers={"Stripe-Signature": f"t={t},v1={sig},v0=deadbeef",
                                    "Content-Type": "application/json"})


def events(api, where="1"):
    api.drain()
    return api.ctx.store.query(
        f"SELECT EventId, Type, CorrelationId, Source, toString(Amount) AS amount, Currency, Attributes "
        f"FROM {api.ctx.store.table('events')} FINAL WHERE {where} ORDER BY EventId").dicts()


def letters(api, **params):
    api.ctx.deadletters.flush()
    r = api.get("/api/v1/deadletters", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def src(api_factory):
    return api_factory(CONFIG)


def test_minor_units_follow_iso_4217_exponents():
    assert minor_to_decimal(5000, "JPY") == "5000"
    assert minor_to_decimal(1099, "eur") == "10.99"
    assert minor_to_decimal("1250", "BHD") == "1.250"
    assert minor_to_decimal(-5, "USD") == "-0.05"
    with pytest.raises(ValueError):
        minor_to_decimal("12.5", "USD")


def test_stripe_signed_payloads_map_with_the_preset(src):
    r = stripe_post(src, INVOICE_PAID)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = stripe_post(src, CHARGE_JPY, secret=WHSEC_OLD)           # the older secret, during a rotation
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = stripe_post(src, INVOICE_PAID)                           # Stripe retries the same event
    assert r.json()["duplicates"] == 1 and r.json()["accepted"] == 0
    inv, charge = events(src)
    assert charge["EventId"] == "stripe-live:evt_3MmlLrLkdIwHu7ix0snN0B15"
    assert (charge["Type"], charge["CorrelationId"], charge["amount"], charge["Currency"]) == \
        ("payment.received", "pay_jp_1", "5000", "JPY")
    assert (inv["Type"], inv["CorrelationId"], inv["amount"], inv["Currency"], inv["Source"]) == \
        ("payment.received", "in_1MtHbELkdIwHu7ixl4OzzPMv", "10.99", "USD", "stripe-live")
    assert inv["Attributes"]["invoice_ref"] == "F7A7D3B1-0001" and inv["Attributes"]["provider_type"] == "invoice.paid"
    m = src.ctx.metrics
    assert m.source_duplicates_total.labels("stripe-live")._value.get() == 1
    assert m.source_lateness_seconds.labels("stripe-live")._sum.get() > 0


def test_stripe_forged_and_stale_are_401_and_dead_lettered(src):
    r = stripe_post(src, INVOICE_PAID, secret="whsec_attacker")
    assert r.status_code == 401 and r.json()["field"] == "signature"
    r = stripe_post(src, CHARGE_JPY, t=int(time.time()) - 301)   # a captured request replayed 5 minutes later
    assert r.status_code == 401 and "tolerance" in r.json()["error"]
    r = src.client.post("/api/v1/sources/stripe-live", content=b"{}")
    assert r.status_code == 401
    assert events(src) == []
    doc = letters(src, source="stripe-live")
    assert sorted(x["reason"] for x in doc["items"]) == ["signature_invalid", "signature_missing", "timestamp_stale"]
    stale = next(x for x in doc["items"] if x["reason"] == "timestamp_stale")
    assert "evt_3MmlLrLkdIwHu7ix0snN0B15" in stale["body"] and stale["count"] == 1 and stale["status"] == "open"
    assert src.ctx.metrics.source_signature_failures_total.labels("stripe-live", "timestamp_stale")._value.get() == 1
    # signature letters are never replayed: nothing proved who sent them
    r = src.post("/api/v1/deadletters/replay", scope="admin", params={"source": "stripe-live"})
    assert r.json()["skipped"] == 3 and r.json()["replayed"] == 0
    assert events(src) == []


def _bus(src, doc, secret="bus-secret"):
    body = json.dumps(doc).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return src.client.post("/api/v1/sources/billing-bus", content=body,
                           headers={"X-Hub-Signature-256": f"sha256={sig}"})


BATCH = {"items": [
    {"kind": "settled", "uid": "b1", "ref": "pay_1", "at_ms": 1767225600000, "cents": 1250, "cur": "bhd"},
    {"kind": "settled", "uid": "b2", "at_ms": 1767225660000, "cents": 1250, "cur": "EUR"},        # no ref
    {"kind": "refund_created", "uid": "b3", "ref": "pay_3", "at_ms": 1767225720000, "cents": 300, "cur": "EUR"}]}


def test_hmac_batch_with_a_mapping_error_is_dead_lettered_then_replayed_once(src):
    r = _bus(src, BATCH)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["accepted"] == 2 and [x["index"] for x in doc["rejected"]] == [1]
    assert doc["unknown_types"] == ["refund_created"]                      # stored under its own name, counted
    assert src.ctx.metrics.source_unknown_types_total.labels("billing-bus", "refund_created")._value.get() == 1
    assert {x["EventId"]: (x["Type"], x["amount"]) for x in events(src)} == {
        "billing-bus:b1": ("payment.settled", "1.25"), "billing-bus:b3": ("billing_bus.refund_created", "3")}
    (letter,) = letters(src, reason="mapping")["items"]
    assert letter["source"] == "billing-bus" and "item 1" in letter["detail"]
    assert _bus(src, BATCH, secret="wrong").status_code == 401
    # replay before the fix: rejected again, recorded, still open
    r = src.post("/api/v1/deadletters/replay", scope="admin", params={"source": "billing-bus", "reason": "mapping"})
    assert r.json()["rejected_again"] == 1
    # b2 has no ref: fix the mapping (fall back to the uid) and replay
    fixed = Config.model_validate({"sources": {**{k: v.model_dump() for k, v in src.ctx.config.sources.items()},
                                               "billing-bus": {**src.ctx.config.sources["billing-bus"].model_dump(),
                                                               "mapping": {
        **src.ctx.config.sources["billing-bus"].mapping.model_dump(exclude_unset=True),
        "correlation_id": "ref || uid"}}}})
    src.ctx.sources = SourceRegistry(fixed.sources)
    r = src.post("/api/v1/deadletters/replay", scope="admin", params={"source": "billing-bus"})
    assert r.status_code == 200 and r.json()["replayed"] == 1, r.text
    assert r.json()["letters"][0]["accepted"] == 1 and r.json()["letters"][0]["duplicates"] == 2
    rows = {x["EventId"]: x["amount"] for x in events(src)}
    assert rows["billing-bus:b2"] == "12.5" and len(rows) == 3               # b1/b3 not stored twice
    (letter,) = letters(src, reason="mapping")["items"]
    assert letter["status"] == "replayed" and letter["replays"] == 2
    assert letters(src, status="open", source="billing-bus")["items"] == [
        x for x in letters(src, status="open", source="billing-bus")["items"] if x["reason"] != "mapping"]
    r = src.post("/api/v1/deadletters/replay", scope="admin", params={"source": "billing-bus", "reason": "mapping"})
    assert r.json()["replayed"] == 0                                         # a replayed letter is not re-run


def test_odoo_url_token_opens_its_source_only(src):
    body = {"_model": "account.move", "_id": 42, "_action": "Post(#7)", "state": "posted", "name": "INV/2026/0042",
            "payment_reference": "INV/2026/0042", "amount_total": "1250.00", "currency": "EUR",
            "write_date": "2026-01-05T10:00:00+00:00"}
    url = "/api/v1/sources/erp"
    assert src.client.post(f"{url}?token={ODOO_TOKEN}", json=body).json()["accepted"] == 1
    assert src.client.post(f"{url}?token=wrong", json=body).status_code == 401
    assert src.client.post(f"{url}?token={src.keys['ingest']}", json=body).status_code == 401   # no ingest keys
    assert src.client.post(f"/api/v1/sources/billing-bus?token={ODOO_TOKEN}", json=body).status_code == 401
    (row,) = events(src)
    assert (row["EventId"], row["Type"], row["CorrelationId"], row["amount"]) == \
        ("erp:account.move:42:posted", "invoice.posted", "INV/2026/0042", "1250")


def test_unknown_source_and_dead_letter_paging(src):
    for i in range(5):
        assert src.client.post("/api/v1/sources/nope", content=f'{{"n": {i}}}'.encode()).status_code == 404
    src.client.post("/api/v1/sources/nope", content=b'{"n": 0}')            # a repeat: one letter, count 2
    page = letters(src, source="nope", limit=3)
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = letters(src, source="nope", limit=3, cursor=page["next_cursor"])
    assert len(rest["items"]) == 2 and rest["next_cursor"] is None
    every = page["items"] + rest["items"]
    assert len({x["id"] for x in every}) == 5 and sum(x["count"] for x in every) == 6
    one = src.get(f"/api/v1/deadletters/{every[0]['id']}").json()
    assert one["reason"] == "unknown_source" and one["body"].startswith('{"n":')
    assert src.get("/api/v1/deadletters", params={"cursor": "garbage"}).status_code == 400
    assert src.get("/api/v1/deadletters/0000").status_code == 404
    assert src.client.get("/api/v1/deadletters").status_code == 401
    assert src.post("/api/v1/deadletters/replay", scope="read").status_code == 403


def test_rejected_items_of_every_door_become_dead_letters(src):
    r = src.post("/api/v1/events", json=[{"event_id": "x1", "type": "payment.settled", "correlation_id": "c",
                                          "occurred_at": "2026-01-01T00:00:00Z", "source": "s", "amount": 1.5}])
    assert r.status_code == 400
    (letter,) = letters(src, reason="invalid_event", source="events")["items"]
    assert '"event_id":"x1"' in letter["body"] and "amount" in letter["detail"]


def test_deadletter_age_slo_burns_while_letters_wait_and_recovers_after_replay(api_factory):
    import datetime as dt

    from slo.engine import SloEngine
    api = api_factory(CONFIG + """
slos:
  - {name: replayed-within-4h, objective: 0.99, window: 1d,
     sli: {kind: deadletter_age, threshold: 4h, labels: {source: billing-bus}}}
""")
    assert _bus(api, BATCH).json()["accepted"] == 2
    dl = api.ctx.deadletters
    dl.flush()
    m = dt.timedelta(minutes=1)
    t0 = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) - 400 * m
    # the letter arrived 400 minutes ago (a second row of the same letter carries its first sighting)
    (letter,) = dl.find(source="billing-bus")[0]
    letter = dl.get(letter["id"])
    api.ctx.store.insert("dead_letters", [(letter["id"], "source", "billing-bus", "mapping", letter["detail"],
                                           letter["body"], letter["body_bytes"], t0, t0, 0)],
                         ("Id", "Door", "Source", "Reason", "Detail", "Body", "BodyBytes", "FirstSeen", "LastSeen",
                          "Count"))
    for k in range(0, 301):                              # the collector's minute sample, 5 h of waiting
        ages = dl.record_age_sample(t0 + k * m)
    assert 5 * 3600 - 120 <= ages["billing-bus"] <= 5 * 3600 + 120 and ages["stripe-live"] == 0

    def evaluate(at):
        (r,) = [x for x in SloEngine(api.ctx.store, api.ctx.config).evaluate(at) if x.spec.name == "replayed-within-4h"]
        return r
    burning = evaluate(t0 + 300 * m)
    assert burning.windows["1h"].burn_rate == pytest.approx(100) and burning.windows["5m"].good == 0
    assert burning.state in ("page", "exhausted")
    fixed = Config.model_validate({"sources": {"billing-bus": {
        **api.ctx.config.sources["billing-bus"].model_dump(),
        "mapping": {**api.ctx.config.sources["billing-bus"].mapping.model_dump(exclude_unset=True),
                    "correlation_id": "ref || uid"}}}})
    api.ctx.sources = SourceRegistry(fixed.sources)
    assert api.post("/api/v1/deadletters/replay", scope="admin").json()["replayed"] == 1
    for k in range(301, 362):
        assert dl.record_age_sample(t0 + k * m)["billing-bus"] == 0
    recovered = evaluate(t0 + 361 * m)
    assert recovered.windows["1h"].burn_rate == 0 and recovered.windows["5m"].good == 5
    assert recovered.windows["1d"].good < recovered.windows["1d"].total          # the budget spent stays spent


def test_sources_telemetry_api_and_ui_pages_show_the_metrics_numbers(src):
    assert stripe_post(src, INVOICE_PAID).json()["accepted"] == 1
    stripe_post(src, INVOICE_PAID)                                   # a retry
    stripe_post(src, CHARGE_JPY, secret="forged")
    _bus(src, BATCH)
    (stripe,) = [s for s in src.get("/api/v1/sources").json()["sources"] if s["source"] == "stripe-live"]
    assert (stripe["preset"], stripe["received"], stripe["accepted"], stripe["duplicates"]) == ("stripe", 2, 1, 1)
    assert stripe["signature_failures"] == 1 and stripe["rejected_by_reason"] == {"signature_invalid": 1}
    assert stripe["lateness"]["count"] == 2 and stripe["lateness"]["mean_seconds"] >= 2     # retries included
    text = src.get("/metrics").text
    assert 'revwatch_source_duplicates_total{source="stripe-live"} 1.0' in text
    assert 'revwatch_deadletters_total{reason="mapping",source="billing-bus"} 1.0' in text
    src.ctx.deadletters.flush()
    page = src.get("/ui/sources").text
    assert "stripe-live" in page and "billing-bus" in page and 'href="/ui/deadletters?source=billing-bus"' in page
    page = src.get("/ui/deadletters", params={"source": "billing-bus"}).text
    assert "mapping" in page and "item 1" in page and "&#34;uid&#34;" in page           # the body, escaped
    assert src.get("/ui/deadletters", params={"status": "nope"}).status_code == 400


def test_fast_mapping_paths_agree_with_jmespath():
    import jmespath

    from collector.sources import _compile
    docs = [{"a": 0, "b": {"c": ""}}, {"a": None, "b": {"c": [1]}}, {"a": [], "b": {}},
            {"type": "x", "a": False, "b": 3}, {"type": "y", "a": {}, "b": None}, {}, {"a": "s", "b": [{"c": 1}]},
            {"b": 5, "type": 0}, {"type": False}]
    for expr in ("a", "a.b", "b.c", "a || b.c", "a && b", "(type == 'x' && a) || b", "type != 'x'", "'lit' || a",
                 "a || b || 'z'", "type == `0`", "type == `false`", "b[0].c", "length(b)"):
        f = _compile(expr)
        for d in docs:
            try:
                want = jmespath.search(expr, d)
            except jmespath.exceptions.JMESPathError:
                continue
            assert f(d) == want and type(f(d)) is type(want), (expr, d)


def test_out_of_order_milestones_are_counted_per_source_and_journey(api_factory):
    api = api_factory("journeys: {p2p: {start: payment.settled, milestones: [payment.reconciled], "
                      "end: payment.posted}}\n")

    def send(eid, typ, at, cid="pay_1"):
        r = api.post("/api/v1/events", json=[{"event_id": eid, "type": typ, "correlation_id": cid, "source": "gw",
                                              "occurred_at": at}])
        assert r.status_code == 200, r.text
    send("a", "payment.posted", "2026-01-01T10:05:00Z")
    send("b", "payment.settled", "2026-01-01T10:00:00Z")        # arrives late, occurred before: order kept
    send("b", "payment.settled", "2026-01-01T10:00:00Z")        # a retry: not an arrival
    send("c", "payment.reconciled", "2026-01-01T10:07:00Z")     # late and occurred after the posting
    send("d", "payment.settled", "2026-01-01T11:00:00Z", "pay_2")
    send("e", "payment.posted", "2026-01-01T11:05:00Z", "pay_2")  # in order
    (events,) = [s for s in api.get("/api/v1/sources").json()["sources"] if s["source"] == "events"]
    assert events["out_of_order"] == 2 and events["out_of_order_occurred"] == 1
    text = api.get("/metrics").text
    assert 'revwatch_source_out_of_order_total{journey="p2p",order="arrival",source="events"} 2.0' in text
    send("f", "payment.posted", "2026-01-01T09:00:00Z", "pay_3")
    send("g", "payment.settled", "2026-01-01T09:30:00Z", "pay_3")     # occurred after its own end
    api.drain()
    doc = api.get("/api/v1/journeys/pay_3").json()
    assert [(j["status"], j["total_seconds"]) for j in doc["journeys"]] == [("completed", 0.0)]   # never negative


def test_oversize_webhook_is_413_and_dead_lettered(api_factory):
    api = api_factory(CONFIG + "server: {max_body_bytes: 2KiB}\n")
    r = api.client.post("/api/v1/sources/stripe-live", content=b"{" + b" " * 4096 + b"}",
                        headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 413 and r.json()["field"] == "body"
    (letter,) = letters(api, source="stripe-live")["items"]
    assert letter["reason"] == "too_large" and letter["status"] == "open"
    # never replayed: the body was not even read whole, nothing proved who sent it
    assert api.post("/api/v1/deadletters/replay", scope="admin").json()["skipped"] == 1
    for i in range(3):                           # unknown names in the URL never become metric label values
        assert api.client.post(f"/api/v1/sources/x{i}", content=b"{}").status_code == 404
    assert 'revwatch_deadletters_total{reason="unknown_source",source="-"} 3.0' in api.get("/metrics").text
