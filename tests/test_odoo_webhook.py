"""Odoo's "Send Webhook Notification" automation action → canonical events (probes/odoo_webhook.py): the body as
odoo/addons/base/models/ir_actions.py `_run_action_webhook` builds it (`read(load=None)`, `json.dumps(sort_keys=True,
default=str)`: bare many2one ids, `str(datetime)`), through an odoo source's URL token, deduplication with the
poller's events."""
import datetime as dt
import json

import pytest

from collector.sources import token_hash
from tests.support import fake_odoo
from tests.support.servers import live_server


def odoo_body(model: str, rid: int, **fields) -> bytes:
    """What Odoo POSTs (the rule's fields read with load=None, serialised with default=str)."""
    vals = {"_model": model, "_id": rid, "_action": "revwatch invoices(#7)", **fields}
    return json.dumps(vals, sort_keys=True, default=str).encode()


def test_webhook_maps_posting_and_deduplicates_with_the_poller(api_factory):
    fake = fake_odoo.FakeOdoo(17, groups=fake_odoo.LEAST_PRIVILEGED)       # no tracking values: webhook is exact
    with live_server(fake.app) as base:
        api = api_factory({"probes": [{"name": "erp", "type": "odoo", "url": base, "db": fake_odoo.DB,
                                       "login": fake_odoo.LOGIN, "password": fake_odoo.PASSWORD, "interval": "1h"}],
                           "sources": {"odoo-prod": {"preset": "odoo", "probe": "erp",
                                                     "secrets": [token_hash("t0k3n-rotate-me")]}},
                           "journeys": {"invoice_posting": {"start": "invoice.created", "end": "invoice.posted"}}})
        svc = api.ctx.probes
        svc.run_once()                                                   # drafts seen: invoice.created
        draft = max(r["id"] for r in fake.tables["account.move"].values()
                    if r["state"] == "draft" and r["move_type"] == "out_invoice")
        posted_at = fake.now + dt.timedelta(minutes=3, microseconds=512345)
        with fake.transaction(posted_at) as tx:
            tx.post(draft, "INV/2026/00007", "INV/2026/00007")
        rec = fake.tables["account.move"][draft]
        body = odoo_body("account.move", draft, state="posted", move_type=rec["move_type"], name=rec["name"],
                         payment_reference=rec["payment_reference"], invoice_origin=rec["invoice_origin"],
                         amount_total=rec["amount_total"], currency_id=rec["currency_id"],
                         partner_id=rec["partner_id"], create_date=rec["create_date"], write_date=rec["write_date"])
        # the rule's URL: the odoo source's token (an ingest key in a URL is refused since issue #23)
        refused = api.client.post(f"/api/v1/odoo/erp/webhook?key={api.keys['ingest']}", content=body)
        assert refused.status_code == 401
        url = "/api/v1/sources/odoo-prod?token=t0k3n-rotate-me"
        r = api.client.post(url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["duplicates"]) == (1, 0)
        (after,) = svc.run_once()                                        # the poller sees the same posting
        assert after["events_duplicates"] >= 1
        again = api.client.post(url, content=body, headers={"Content-Type": "application/json"})
        assert again.json()["duplicates"] == 1                           # Odoo may fire twice
    api.drain()
    store = api.ctx.store
    rows = store.query(f"SELECT CorrelationId, OccurredAt, Amount, Currency FROM {store.table('events')} "
                       f"WHERE EventId = 'odoo:prod:account.move:{draft}:posted'").rows
    assert len(rows) == 1
    cid, occurred, amount, currency = rows[0]
    assert cid == f"odoo:prod:account.move:{draft}" and currency == "EUR" and float(amount) == rec["amount_total"]
    assert abs((occurred.replace(tzinfo=None) - posted_at).total_seconds()) < 1
    # created (seen by the poller as a draft) → posted (pushed by Odoo) is one journey, linked by invoice_ref
    doc = api.get(f"/api/v1/journeys/odoo:prod:account.move:{draft}").json()
    (journey,) = doc["journeys"]
    assert journey["status"] == "completed"
    assert journey["total_seconds"] == pytest.approx((posted_at - rec["create_date"]).total_seconds(), abs=1)


def test_webhook_refuses_bad_calls_with_json_errors(api_factory):
    api = api_factory({"probes": [{"name": "erp", "type": "odoo", "url": "http://127.0.0.1:9", "db": "prod",
                                   "interval": "1h"}]})
    key = api.keys["ingest"]

    def post(path, body):                  # the key goes in the Authorization header (never the URL)
        path, _, in_url = path.partition("?key=")
        auth = {"Authorization": f"Bearer {in_url}"} if in_url else {}
        return api.client.post(path, content=body, headers={"Content-Type": "application/json", **auth})
    assert post("/api/v1/odoo/erp/webhook", b"{}").status_code == 401                           # no key at all
    assert post(f"/api/v1/odoo/erp/webhook?key={api.keys['read']}", b"{}").status_code == 403   # wrong scope
    r = post(f"/api/v1/odoo/nope/webhook?key={key}", odoo_body("account.move", 1, state="posted"))
    assert r.status_code == 404 and r.json()["field"] == "probe"
    r = post(f"/api/v1/odoo/erp/webhook?key={key}", b"not json")
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = post(f"/api/v1/odoo/erp/webhook?key={key}", odoo_body("account.move", "x", state="posted"))
    assert r.status_code == 400 and r.json()["field"] == "_id"
    r = post(f"/api/v1/odoo/erp/webhook?key={key}", odoo_body("account.move", 5))
    assert r.status_code == 400 and r.json()["field"] == "state"
    r = post(f"/api/v1/odoo/erp/webhook?key={key}", odoo_body("res.partner", 5, state="posted"))
    assert r.status_code == 400 and r.json()["field"] == "_model"
    # a draft payment has no milestone: accepted, nothing emitted; a payment without reachable Odoo: no currency
    r = post(f"/api/v1/odoo/erp/webhook?key={key}", odoo_body("account.payment", 5, state="draft"))
    assert r.status_code == 200 and r.json()["types"] == []
    r = post(f"/api/v1/odoo/erp/webhook?key={key}", odoo_body("account.payment", 6, state="paid", amount=10.0,
                                                              payment_reference="pay_8812", currency_id=1))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "duplicates": 0, "types": ["payment.posted"]}


def test_webhook_milestones_carry_precision_and_share_the_pollers_ids():
    """Cancellations pushed by Odoo: the same ids as the poller's milestones (probes/odoo_milestones.py), with
    `precision` exact when the body has write_date, `webhook_receipt` otherwise."""
    from probes.odoo_webhook import map_webhook
    fake = fake_odoo.FakeOdoo(18, seed_data=False)
    probe = fake_odoo.in_process_probe(fake, lambda: dt.datetime.now(dt.timezone.utc))
    received = dt.datetime(2026, 11, 2, 9, 5, tzinfo=dt.timezone.utc)
    (pay,) = map_webhook(probe, json.loads(odoo_body("account.payment", 42, state="canceled", payment_type="inbound",
                                                     amount=10.0, currency_id=1,
                                                     write_date="2026-11-02 09:01:02.123456")), received)
    assert (pay["event_id"], pay["type"]) == ("odoo:prod:account.payment:42:cancelled", "payment.cancelled")
    assert pay["attributes"]["precision"] == "exact" and pay["occurred_at"].startswith("2026-11-02T09:01:02")
    assert pay["correlation_id"] == "odoo:prod:account.payment:42" and pay["currency"] == "EUR"
    (inv,) = map_webhook(probe, json.loads(odoo_body("account.move", 7, state="cancel", move_type="out_invoice")),
                         received)
    assert inv["event_id"] == "odoo:prod:account.move:7:cancelled" and inv["attributes"]["precision"] == \
        "webhook_receipt" and inv["occurred_at"] == "2026-11-02T09:05:00Z"
    assert map_webhook(probe, json.loads(odoo_body("account.payment", 43, state="draft")), received) == []
