"""The Odoo probe against the version-by-version test double (tests/fake_odoo.py) over real HTTP: events and
journeys, exact and flagged posting times, per-section degradation, per-company/currency amounts, queue_job,
restart safety, and Odoo's real error envelopes."""
import datetime as dt
import logging
import time
import uuid

import httpx
import pytest

from probes.base import ProbeRunner, build_probe
from probes.odoo_client import OdooClient, OdooError
from probes.service import REGISTRY
from revwatch.config import ProbeConfig
from tests.support import fake_odoo
from tests.support.servers import live_server

CASES = [(16, "jsonrpc"), (16, "xmlrpc"), (17, "jsonrpc"), (17, "xmlrpc"), (18, "jsonrpc"), (18, "xmlrpc"),
         (19, "json2"), (19, "jsonrpc")]


def odoo_probe(base, store=None, name=None, **kw):
    settings = {"url": base, "db": fake_odoo.DB, "login": fake_odoo.LOGIN, "password": fake_odoo.PASSWORD, **kw}
    return build_probe(ProbeConfig(name=name or f"odoo-{uuid.uuid4().hex[:6]}", type="odoo", **settings), REGISTRY,
                       state=store)


def samples(result):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in result.samples}


def by_type(result):
    out = {}
    for e in result.events:
        out.setdefault(e["type"], []).append(e)
    return out


def section_up(result):
    return {s.labels["section"]: s.value for s in result.samples if s.name == "section_up"}


def when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def utcnow_naive() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def stamp(t: dt.datetime) -> str:
    return t.replace(microsecond=0).isoformat() + "Z"


def invoice_ids(fake, state=None):
    return sorted(r["id"] for r in fake.tables["account.move"].values()
                  if r["move_type"] == "out_invoice" and (state is None or r["state"] == state))


@pytest.mark.parametrize("version, protocol", CASES)
def test_events_and_gauges_per_version_and_protocol(store, version, protocol):
    fake = fake_odoo.FakeOdoo(version)
    with live_server(fake.app) as base:
        kw = {"api_key": fake_odoo.API_KEY} if protocol == "json2" else {"protocol": protocol}
        result = odoo_probe(base, store, **kw).run()
    assert {c[0] for c in fake.calls} == {protocol}
    assert set(section_up(result).values()) == {1}, result.notes
    ev = by_type(result)
    # created → posted of each invoice is one journey keyed by the move; the number is only an attribute
    assert len(ev["invoice.created"]) == 7 and len(ev["invoice.posted"]) == 5          # the entry MISC/… excluded
    for posted in ev["invoice.posted"]:
        move_id = int(posted["attributes"]["odoo_id"])
        assert posted["correlation_id"] == f"odoo:prod:account.move:{move_id}"
        created = next(e for e in ev["invoice.created"] if e["correlation_id"] == posted["correlation_id"])
        assert created["event_id"] == f"odoo:prod:account.move:{move_id}:created"
        # exact posting time: the posting transaction's stamp (mail.tracking.value), not a later write
        rec = fake.tables["account.move"][move_id]
        track = next(t for t in fake.tables["mail.tracking.value"].values()
                     if fake.tables["mail.message"][t["mail_message_id"]]["res_id"] == move_id
                     and fake.tables["mail.message"][t["mail_message_id"]]["model"] == "account.move")
        assert posted["occurred_at"] == stamp(track["create_date"]) and posted["attributes"]["posted_at_precision"] \
            == "exact"
        assert created["occurred_at"] == stamp(rec["create_date"])
        assert posted["attributes"]["invoice_ref"] == rec["name"] == posted["attributes"]["payment_reference"]
    first = next(e for e in ev["invoice.posted"] if e["attributes"]["invoice_ref"] == "INV/2026/00001")
    assert first["amount"] == "100.00" and first["currency"] == "EUR" and first["attributes"]["invoice_origin"] == \
        "SUB001"
    assert "invoice_ref" not in next(e for e in ev["invoice.created"] if "invoice_ref" not in e["attributes"]
                                     )["attributes"]                         # a draft is '/': no reference yet
    assert {e["correlation_id"] for e in ev["payment.posted"]} == {"INV/2026/00001", "INV/2026/00002"}
    assert all(e["attributes"]["posted_at_precision"] == "exact" for e in ev["payment.posted"])
    rec = {e["correlation_id"] for e in ev["payment.reconciled"]}
    assert rec == {"INV/2026/00001", f"odoo:prod:account.move:{invoice_ids(fake)[0]}"}
    s = samples(result)
    sa, inc = (("company", "Revwatch SA"), ("currency", "EUR")), (("company", "Revwatch Inc"), ("currency", "USD"))
    assert s[("odoo_receivables_open", sa)] == 3 and s[("odoo_receivables_amount", sa)] == 900.0
    assert s[("odoo_receivables_open", inc)] == 1 and s[("odoo_receivables_amount", inc)] == 500.0
    assert s[("odoo_unreconciled_lines", sa)] == 3 and s[("odoo_unreconciled_amount", sa)] == 309.49
    assert s[("odoo_unreconciled_lines_aged", (("le_days", "7"),))] == 2
    assert s[("odoo_unreconciled_lines_aged", (("le_days", "+Inf"),))] == 1
    unmatched = 1 if version >= 18 else 2          # 18+: in_process (the paid one is out); 16/17: posted, not matched
    assert s[("odoo_unmatched_payments", sa)] == unmatched
    assert s[("odoo_draft_invoices_old", (("older_than_hours", "24"),))] == 1
    assert s[("odoo_subscriptions_overdue_invoicing", ())] == 1                   # stage vs subscription_state
    assert s[("odoo_cron_late", ())] == 1 and s[("odoo_cron_max_lateness_seconds", ())] >= 7190
    assert s[("odoo_queue_jobs", (("state", "pending"),))] == 2
    assert s[("odoo_queue_jobs", (("state", "wait_dependencies"),))] == 1
    assert 5390 < s[("odoo_queue_job_oldest_pending_age_seconds", ())] < 5500
    # OCA's stuck domain: enqueued for more than 1 min (16) / 5 min (17, 18) by date_enqueued
    assert s[("odoo_queue_jobs_stuck", (("state", "enqueued"),))] == (2 if version == 16 else 1)
    assert s[("odoo_server_version", (("protocol", protocol),))] == version
    aggregate = "formatted_read_group" if version >= 19 else "read_group"
    assert (protocol, "queue.job", aggregate) in fake.calls and (protocol, "account.move", aggregate) in fake.calls


@pytest.mark.parametrize("version", [16, 18])
def test_least_privileged_user_without_queue_job_still_gets_invoices_and_payments(store, version, caplog):
    caplog.set_level(logging.INFO, logger="revwatch.probes.odoo")
    fake = fake_odoo.FakeOdoo(version, groups=fake_odoo.LEAST_PRIVILEGED, queue_job=False)
    with live_server(fake.app) as base:
        probe = odoo_probe(base, store, protocol="xmlrpc")
        seen = []
        runner = ProbeRunner(probe, 30, lambda p, r, up, s: seen.append((r, up)))
        runner()
        runner()
    (first, up1), (second, up2) = seen
    assert up1 and up2
    ups = section_up(first)
    assert ups["invoices"] == ups["payments"] == ups["reconciliation"] == ups["settlements"] == 1
    assert ups["crons"] == ups["queue_jobs"] == ups["posting_time"] == 0
    notes = " ".join(first.notes)
    assert "queue.job does not exist on Odoo" in notes and "OCA queue_job is not installed" in notes
    assert "ir.cron" in notes and "mail.tracking.value" in notes
    assert any(s.name == "odoo_receivables_open" for s in first.samples)
    ev = by_type(first)
    # without tracking values, invoices posted before the first poll get no lag: observed only
    assert len(ev["invoice.observed"]) == 5 and "invoice.posted" not in ev
    assert all(e["attributes"]["posted_at_precision"] == "before_first_poll" for e in ev["invoice.observed"])
    assert len(ev["invoice.created"]) == 2                                      # the two drafts
    # one log line per section going down, not one per run
    downs = [r for r in caplog.records if "section" in r.getMessage() and "down" in r.getMessage()]
    assert len(downs) == 3


def test_draft_then_posted_is_one_journey_dated_by_poll_without_tracking(store):
    fake = fake_odoo.FakeOdoo(17, groups=fake_odoo.LEAST_PRIVILEGED, now=utcnow_naive() - dt.timedelta(minutes=5))
    with live_server(fake.app) as base:
        probe = odoo_probe(base, store)
        first = probe.run()
        first.commit()
        draft = invoice_ids(fake, "draft")[-1]
        created = next(e for e in first.events if e["type"] == "invoice.created"
                       and e["correlation_id"] == f"odoo:prod:account.move:{draft}")
        post_at = utcnow_naive()
        with fake.transaction(post_at) as tx:
            tx.post(draft, "INV/2026/00007", "INV/2026/00007")
        with fake.transaction(post_at + dt.timedelta(milliseconds=10)) as tx:   # a later edit of no watched field
            tx.write("account.move", invoice_ids(fake, "posted")[0], ref="edited")
        second = probe.run()
    ev = by_type(second)
    (posted,) = ev["invoice.posted"]
    assert posted["correlation_id"] == created["correlation_id"]
    a = posted["attributes"]
    # the posting transaction's start (second resolution), unless that lies before the previous poll's scan
    assert when(posted["occurred_at"]) == max(when(stamp(post_at)), when(a["occurred_after"]))
    assert a["posted_at_precision"] == a["precision"] == "poll" and a["posted_after"] == a["occurred_after"]
    assert when(a["occurred_after"]) <= when(posted["occurred_at"]) <= when(a["seen_at"])
    assert a["invoice_ref"] == "INV/2026/00007"
    # nothing else: the draft was delivered already and the edit changed no watched field
    assert [e["type"] for e in second.events] == ["invoice.posted"]


def test_posting_time_compares_translated_labels_through_fields_get(store):
    fake = fake_odoo.FakeOdoo(18, tracking_lang="fr_FR")          # postings tracked by a French-speaking user
    assert {t["new_value_char"] for t in fake.tables["mail.tracking.value"].values()} >= {"Comptabilisé"}
    with live_server(fake.app) as base:
        result = odoo_probe(base, store, protocol="jsonrpc").run()
    posted = by_type(result)["invoice.posted"]
    assert len(posted) == 5 and {e["attributes"]["posted_at_precision"] for e in posted} == {"exact"}


def test_payment_posted_on_16_17_when_only_its_move_changes(store):
    fake = fake_odoo.FakeOdoo(16)
    with live_server(fake.app) as base:
        probe = odoo_probe(base, store)
        probe.run().commit()
        pay = next(p for p in fake.tables["account.payment"].values()
                   if fake.tables["account.move"][p["move_id"]]["state"] == "draft")
        before = pay["write_date"]
        with fake.transaction(fake.now + dt.timedelta(minutes=1)) as tx:
            tx.post(pay["move_id"], "PBNK1/2026/00003")
        assert pay["write_date"] == before                  # _inherits: the payment row is untouched
        second = by_type(probe.run())
    (posted,) = second["payment.posted"]
    assert posted["correlation_id"] == "INV/2026/00003" and posted["attributes"]["posted_at_precision"] == "exact"
    assert posted["attributes"]["payment_ref"] == "PBNK1/2026/00003"


def test_payment_posted_on_17_without_tracking_is_dated_by_its_move(store):
    fake = fake_odoo.FakeOdoo(17, groups=fake_odoo.LEAST_PRIVILEGED, now=utcnow_naive() - dt.timedelta(minutes=5))
    with live_server(fake.app) as base:
        probe = odoo_probe(base, store)
        probe.run().commit()
        pay = next(p for p in fake.tables["account.payment"].values()
                   if fake.tables["account.move"][p["move_id"]]["state"] == "draft")
        time.sleep(1.1)                                   # a posting in a later second than the previous poll:
                                                          # the probe's keyset compares Odoo's write_date (whole
                                                          # seconds, the live server's clock) with its own now
        post_at = utcnow_naive()
        with fake.transaction(post_at) as tx:
            tx.post(pay["move_id"], "PBNK1/2026/00003")
        (posted,) = by_type(probe.run())["payment.posted"]
    a = posted["attributes"]
    assert posted["occurred_at"] == stamp(post_at) and a["posted_at_precision"] == "poll"
    assert when(a["occurred_after"]) <= when(posted["occurred_at"]) <= when(a["seen_at"])


def test_a_customer_credit_note_is_issued_when_posted(store):
    fake = fake_odoo.FakeOdoo(18)
    with fake.transaction(fake.now - dt.timedelta(minutes=9)) as tx:
        refund = tx.create("account.move", name="/", state="draft", move_type="out_refund", amount_total=40.0,
                           currency_id=1, company_id=1, invoice_origin="INV/2026/00002")
    with fake.transaction(fake.now - dt.timedelta(minutes=8)) as tx:
        tx.post(refund, "RINV/2026/00001", "RINV/2026/00001")
    with live_server(fake.app) as base:
        result = odoo_probe(base, store).run()
    mine = [e for e in result.events if e["correlation_id"] == f"odoo:prod:account.move:{refund}"]
    assert [e["type"] for e in mine] == ["credit_note.created", "credit_note.issued"]
    assert mine[1]["occurred_at"] == stamp(fake.now - dt.timedelta(minutes=8)) and mine[1]["amount"] == "40.00"


def test_bank_match_without_payment_is_a_reconciliation(store):
    fake = fake_odoo.FakeOdoo(18)
    inv = invoice_ids(fake, "posted")[1]
    with fake.transaction(fake.now + dt.timedelta(minutes=1)) as tx:
        st_line = tx.create("account.bank.statement.line", amount=200.0, date=str(fake.now.date()),
                            is_reconciled=True, payment_ref="SEPA 42", company_id=1, currency_id=1)
        st_move = tx.create("account.move", name="BNK1/2026/0001", state="posted", move_type="entry",
                            statement_line_id=st_line, company_id=1, currency_id=1)
        a = tx.create("account.move.line", move_id=inv, company_id=1, currency_id=1, balance=200.0)
        b = tx.create("account.move.line", move_id=st_move, company_id=1, currency_id=1, balance=-200.0)
        part = tx.create("account.partial.reconcile", debit_move_id=a, credit_move_id=b, amount=200.0,
                         company_id=1, company_currency_id=1, max_date=str(fake.now.date()))
    with live_server(fake.app) as base:
        result = odoo_probe(base, store).run()
    recs = [e for e in result.events if e["event_id"].startswith(f"odoo:prod:account.partial.reconcile:{part}:")]
    assert {e["correlation_id"] for e in recs} == {f"odoo:prod:account.bank.statement.line:{st_line}",
                                                    f"odoo:prod:account.move:{inv}"}
    assert all(e["occurred_at"] == stamp(fake.now + dt.timedelta(minutes=1)) and e["amount"] == "200.00"
               for e in recs)
    bank = next(e for e in recs if "bank.statement.line" in e["correlation_id"])
    assert bank["attributes"]["settlement_date"] == str(fake.now.date()) and bank["attributes"]["bank_ref"] == \
        "SEPA 42" and bank["attributes"]["invoice_correlation_id"] == f"odoo:prod:account.move:{inv}"


def test_restart_safe_cursor_moves_only_after_the_events_are_stored(store):
    fake = fake_odoo.FakeOdoo(17)
    name = f"odoo-{uuid.uuid4().hex[:6]}"
    with live_server(fake.app) as base:
        lost = odoo_probe(base, store, name=name).run()          # events never stored: no commit
        again = odoo_probe(base, store, name=name).run()         # a new process reads them again
        assert [e["event_id"] for e in again.events] == [e["event_id"] for e in lost.events]
        again.commit()
        third = odoo_probe(base, store, name=name).run()         # persisted in the store: nothing new
        assert third.events == []
        with fake.transaction(fake.now + dt.timedelta(seconds=30)) as tx:
            tx.post(invoice_ids(fake, "draft")[0], "INV/2026/00006", "INV/2026/00006")
        fourth = by_type(odoo_probe(base, store, name=name).run())
    assert [e["attributes"]["invoice_ref"] for e in fourth["invoice.posted"]] == ["INV/2026/00006"]


def test_a_section_comes_back_by_itself_once_its_module_is_installed(store, caplog):
    caplog.set_level(logging.INFO, logger="revwatch.probes.odoo")
    fake = fake_odoo.FakeOdoo(18, queue_job=False)
    with live_server(fake.app) as base:
        probe = odoo_probe(base, store, schema_recheck_minutes=0)
        assert section_up(probe.run())["queue_jobs"] == 0
        fake.models["queue.job"] = fake_odoo.schema(18, True)["queue.job"]     # an admin installs queue_job
        fake.tables["queue.job"] = {}
        with fake.transaction() as tx:
            tx.create("ir.model", model="queue.job", name="Queue Job")
            tx.create("queue.job", uuid="u1", state="pending", date_created=fake.now, channel="root")
        result = probe.run()
    assert section_up(result)["queue_jobs"] == 1
    assert samples(result)[("odoo_queue_jobs", (("state", "pending"),))] == 1
    assert any("section queue_jobs is back" in r.getMessage() for r in caplog.records)


def test_unknown_field_is_found_at_start_up_and_disables_its_section_only(store):
    fake = fake_odoo.FakeOdoo(17)
    del fake.models["account.move"]["invoice_origin"]              # e.g. a field renamed in another version
    with live_server(fake.app) as base:
        result = odoo_probe(base, store).run()
    ups = section_up(result)
    assert ups["invoices"] == 0 and ups["payments"] == ups["queue_jobs"] == 1
    assert "section invoices down: field account.move.invoice_origin does not exist on Odoo 17.0" in result.notes
    assert "invoice.created" not in by_type(result) and "payment.posted" in by_type(result)


@pytest.mark.parametrize("version, protocol", [(17, "jsonrpc"), (17, "xmlrpc"), (19, "json2")])
def test_client_decodes_odoo_errors(version, protocol):
    fake = fake_odoo.FakeOdoo(version, queue_job=False, groups=fake_odoo.LEAST_PRIVILEGED)
    with live_server(fake.app) as base:
        c = OdooClient(base, fake_odoo.DB, fake_odoo.LOGIN, fake_odoo.PASSWORD,
                       fake_odoo.API_KEY if protocol == "json2" else "", protocol)
        with pytest.raises(OdooError) as e:
            c.search_read("account.move", [], ["no_such_field"])
        assert e.value.invalid_field and "no_such_field" in e.value.message
        with pytest.raises(OdooError) as e:
            c.search_read("account.move", [("no_such_field", "=", 1)], ["name"])
        assert e.value.invalid_field
        with pytest.raises(OdooError) as e:
            c.search_count("queue.job", [])
        assert e.value.missing_model and not e.value.access_error
        with pytest.raises(OdooError) as e:
            c.search_count("ir.cron", [])
        assert e.value.access_error
        assert c.search_count("res.partner", [("name", "like", "Customer")]) == 5           # like wraps in %…%
        assert c.search_count("res.partner", [("name", "=like", "Customer")]) == 0
        archived = c.search_read("res.partner", [("active", "=", False)], ["name"])         # active_test off
        assert [r["name"] for r in archived] == ["Archived Ltd"]
        inv = c.search_read("account.move", [("state", "=", "posted"), ("move_type", "=", "out_invoice")],
                            ["partner_id", "company_id"], limit=1)[0]
        assert isinstance(inv["partner_id"], list) and inv["partner_id"][1].startswith("Customer")
        fake.revoke_api_key()
        if protocol == "json2":
            with pytest.raises(OdooError) as e:
                c.search_count("res.partner", [])
            assert e.value.auth_error and e.value.status == 401


def test_revoked_api_key_fails_the_run_without_leaking_it(store, caplog):
    caplog.set_level(logging.DEBUG)
    fake = fake_odoo.FakeOdoo(17)
    with live_server(fake.app) as base:
        for protocol in ("jsonrpc", "xmlrpc"):
            probe = odoo_probe(base, store, protocol=protocol, password="", login=fake_odoo.LOGIN,
                               api_key=fake_odoo.API_KEY)
            assert probe.run().events
            fake.revoke_api_key()
            sink = []
            runner = ProbeRunner(probe, 10, lambda p, r, up, s, sink=sink: sink.append(up))
            runner()
            assert sink == [False] and "AccessDenied" in runner.last_error
            assert fake_odoo.API_KEY not in runner.last_error and fake_odoo.API_KEY not in caplog.text
            fake.api_keys.add(fake_odoo.API_KEY)


def test_19_keeps_jsonrpc_and_a_gated_database_answers_200_with_code_404(store):
    fake = fake_odoo.FakeOdoo(19)
    with live_server(fake.app) as base:
        probe = odoo_probe(base, store, protocol="jsonrpc")
        assert probe.client.search_count("account.move", [("state", "=", "posted")]) > 0
        assert fake.deprecation_warnings > 0
        fake.rpc_gated = True
        raw = httpx.post(f"{base}/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw", "args": [fake_odoo.DB, 2, fake_odoo.PASSWORD,
                                                                  "account.move", "search_count", [[]]]}})
        assert raw.status_code == 200 and raw.json()["error"]["code"] == 404
        keyed = odoo_probe(base, store, protocol="jsonrpc", api_key=fake_odoo.API_KEY)
        assert keyed.client.search_count("account.move", [("state", "=", "posted")]) > 0
        assert keyed.client.protocol == "json2"                        # switched on the gated reply
        no_key = odoo_probe(base, store, protocol="jsonrpc")
        with pytest.raises(OdooError) as e:
            no_key.client.search_count("account.move", [])
        assert e.value.gated
