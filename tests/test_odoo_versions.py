"""The Odoo probe end to end against random interleavings on the version-by-version double (16–19): invoices created,
edited, posted, reset, cancelled, paid with the register-payment wizard and matched with bank lines — many commits
within the same second, some transactions committing up to 30 s after their stamp — polled at random instants,
with and without read access to mail.tracking.value. The oracle is the double's own history (its tracking table
and commit log), not the probe's code:

* every milestone occurrence (a class change of state / payment_state, tests/support/fake_odoo.py `_track`) gives
  exactly one stored event id `…:<milestone>[:<n>]`, and no other id exists; with tracking its time is the change's
  transaction stamp; without, the first occurrence of each milestone that was current at some poll or at the end is
  delivered, and `occurred_after ≤ occurred_at ≤ seen_at` holds with a real occurrence committed in
  `[occurred_after, seen_at]`;
* every created record has its `created`, every partial reconciliation its two `payment.reconciled`;
* wizard payments correlate by their own record and reach the invoice through the reconciliation.
"""
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

from tests.support import fake_odoo
from tests.support.fake_odoo import FakeOdoo, SerializationFailure, Transaction

T0 = dt.datetime(2026, 11, 2, 9, 0, 0)
EVENT_SECTIONS = ("invoices", "payments", "reconciliation")
UTC = dt.timezone.utc
# the milestone classes, written from Odoo's selections (account_move.py, account_payment.py), independently of
# probes/odoo_milestones.py
MOVE = {"state": {"posted": "posted", "cancel": "cancelled"},
        "payment_state": {"in_payment": "paid", "paid": "paid", "partial": "partial", "reversed": "reversed"}}
PAY = {"state": {"posted": "posted", "in_process": "posted", "paid": "posted", "cancel": "cancelled",
                 "canceled": "cancelled", "rejected": "cancelled"}}


ops = st.lists(st.tuples(
    st.sampled_from(["create", "create_post", "post", "post", "write_ref", "write_amount", "reset", "cancel",
                     "pay", "pay", "bank"]),
    st.integers(0, 5),                                            # which invoice
    st.floats(0, 3, allow_nan=False),                             # start: a crowd within three seconds
    st.sampled_from([0.0, 0.001, 0.2, 0.7, 2.5, 30.0])),          # duration: same second … late commit
    min_size=1, max_size=16)
polls = st.lists(st.floats(0, 5, allow_nan=False) | st.tuples(st.floats(0, 5, allow_nan=False),
                                                                st.sampled_from(["crash", "restart"])),
                 max_size=12)


def apply(tx: Transaction, kind: str, invoices: list[int], target: int, serial: int) -> None:
    """One user action, if it applies to the invoice's state as the transaction sees it."""
    if kind in ("create", "create_post") or not invoices:
        inv = tx.create("account.move", name="/", state="draft", move_type="out_invoice", amount_total=100.0,
                        amount_residual=100.0, currency_id=1, company_id=1, payment_state="not_paid")
        invoices.append(inv)
        if kind == "create_post":
            tx.post(inv, f"INV/{inv}", f"INV/{inv}")
        return
    inv = invoices[target % len(invoices)]
    rec = tx.view("account.move", inv)
    state, residual = rec["state"], rec["amount_residual"]
    if kind == "post" and state == "draft":
        tx.post(inv, f"INV/{inv}", f"INV/{inv}")
    elif kind == "write_ref":
        tx.write("account.move", inv, ref=f"note {serial}")
    elif kind == "write_amount" and state == "draft":
        tx.write("account.move", inv, amount_total=100.0 + serial, amount_residual=100.0 + serial)
    elif kind == "reset" and state in ("posted", "cancel") and rec["payment_state"] == "not_paid":
        tx.reset_to_draft(inv)
    elif kind == "cancel" and state == "draft":
        tx.cancel(inv)
    elif kind == "pay" and state == "posted" and residual > 0:
        tx.register_payment(inv, round(residual / 2, 2) if serial % 2 else residual, f"PBNK1/{serial:05d}")
    elif kind == "bank" and state == "posted" and residual > 0:
        tx.reconcile_statement(inv, residual, f"SEPA {serial}")


def simulate(version: int, tracking: bool, plan, poll_at):
    fake = FakeOdoo(version, seed_data=False, now=T0, queue_job=False,
                    groups=fake_odoo.ALL_GROUPS if tracking else fake_odoo.LEAST_PRIVILEGED)
    now = [T0 - dt.timedelta(seconds=1)]
    stored: dict[str, dict] = {}
    probe = fake_odoo.in_process_probe(fake, lambda: now[0].replace(tzinfo=UTC), lookback_minutes=1)
    invoices: list[int] = []
    commit_at: dict[int, dt.datetime] = {}            # mail.message id -> commit time of its transaction
    snapshots: list[dict[tuple[str, int], set[str]]] = []

    def poll(kind="ok"):
        nonlocal probe
        if kind == "restart":                             # a new process: only the persisted state survives
            probe = fake_odoo.in_process_probe(fake, probe.clock, lookback_minutes=1)
            probe.state = state
        result = probe.run(EVENT_SECTIONS)
        if kind == "crash":                               # killed before the events were stored: nothing moves
            return
        for e in result.events:
            stored.setdefault(e["event_id"], e)          # the collector keeps the first copy of an id
        result.commit()
        snapshots.append(current_milestones(fake))
    state = probe.state
    poll()                                                # monitoring starts before any of the actions
    timeline = [(start + duration, 0, n, (kind, target, start)) for n, (kind, target, start, duration)
                in enumerate(plan)] + [(p, 1, 0, "ok") if isinstance(p, float) else (p[0], 1, 0, p[1])
                                       for p in poll_at]
    base, committed = fake.commits, []                   # commit times, for REPEATABLE READ snapshots
    for at, is_poll, n, what in sorted(timeline, key=lambda x: (x[0], x[1], x[2])):
        now[0] = T0 + dt.timedelta(seconds=at)
        if is_poll:
            poll(what)
            continue
        kind, target, start = what
        before = set(fake.tables["mail.message"])
        tx = fake.begin(T0 + dt.timedelta(seconds=start))
        tx.snapshot = base + sum(1 for c in committed if c <= start)          # what it saw when it began
        apply(tx, kind, invoices, target, n)
        try:
            tx.commit()
        except SerializationFailure:                      # Odoo retries the request: a new transaction, now
            retry = fake.begin(now[0])
            apply(retry, kind, invoices, target, n)
            retry.commit()
        committed.append(at)
        for msg in set(fake.tables["mail.message"]) - before:
            commit_at[msg] = now[0]
    end = max(x[0] for x in timeline) if timeline else 0.0
    for k in range(16):                                   # settle: polls every 5 s past lookback + longest tx
        now[0] = T0 + dt.timedelta(seconds=end + 5 * (k + 1))
        poll()
    return fake, stored, snapshots, commit_at


def current_milestones(fake: FakeOdoo) -> dict[tuple[str, int], set[str]]:
    out: dict[tuple[str, int], set[str]] = {}
    for rid, r in fake.tables["account.move"].items():
        if r["move_type"] == "out_invoice":
            out[("account.move", rid)] = {m for f, c in MOVE.items() if (m := c.get(r.get(f)))}
    for rid, r in fake.tables["account.payment"].items():
        state = fake._stored("account.payment", r, "state")
        out[("account.payment", rid)] = {m for m in [PAY["state"].get(state)] if m}
    return out


def history(fake: FakeOdoo):
    """(model, record, milestone, n, stamp, message) for every milestone occurrence in the double's tracking."""
    link = "field" if fake.version == 16 else "field_id"
    fields = {fid: rec for fid, rec in fake.tables["ir.model.fields"].items()}
    pay_of_move = {p["move_id"]: pid for pid, p in fake.tables["account.payment"].items()}
    counts: dict[tuple, int] = {}
    out = []
    for tid in sorted(fake.tables["mail.tracking.value"]):
        t = fake.tables["mail.tracking.value"][tid]
        msg = fake.tables["mail.message"][t["mail_message_id"]]
        field = fields[t[link]]["name"]
        model, rid = msg["model"], msg["res_id"]
        labels = {**{v: k for k, v in fake_odoo.LABELS["en_US"].items()},
                  **{v: k for k, v in fake_odoo.PAYMENT_STATE_SELECTION}, **{v: k for k, v in
                                                                               fake_odoo.PAYMENT_STATES_18}}
        classes = MOVE if model == "account.move" else PAY
        old, new = labels.get(t["old_value_char"]), labels.get(t["new_value_char"])
        m = classes.get(field, {}).get(new)
        if not m or m == classes.get(field, {}).get(old):
            continue
        if model == "account.move" and rid in pay_of_move and fake.version < 18:   # 16/17: the move's state
            model, rid = "account.payment", pay_of_move[rid]
        elif model == "account.move" and fake.tables["account.move"][rid]["move_type"] != "out_invoice":
            continue
        key = (model, rid, m)
        counts[key] = counts.get(key, 0) + 1
        out.append((model, rid, m, counts[key], t["create_date"], msg["id"]))
    return out


def iso_second(t: dt.datetime) -> str:
    return t.replace(microsecond=0).isoformat() + "Z"


def parse(v: str) -> dt.datetime:
    return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).replace(tzinfo=None)


def check(fake: FakeOdoo, stored: dict, snapshots, commit_at, tracking: bool) -> None:
    db = fake_odoo.DB
    occ = history(fake)
    expected: set[str] = set()
    allowed: set[str] = set()
    for model in ("account.move", "account.payment"):
        for rid, r in fake.tables[model].items():
            if model == "account.payment" or r["move_type"] == "out_invoice":
                expected.add(f"odoo:{db}:{model}:{rid}:created")
    for pid in fake.tables["account.partial.reconcile"]:
        expected |= {f"odoo:{db}:account.partial.reconcile:{pid}:reconciled",
                     f"odoo:{db}:account.partial.reconcile:{pid}:invoice"}
    by_id: dict[str, list] = {}
    for model, rid, m, n, at, msg in occ:
        eid = f"odoo:{db}:{model}:{rid}:{m if n == 1 else f'{m}:{n}'}"
        by_id.setdefault(eid, []).append((at, msg))
        if tracking:
            expected.add(eid)
        elif n == 1:
            allowed.add(eid)
    if not tracking:                                       # what a poll could see: current at a poll or at the end
        for snap in snapshots:
            for (model, rid), ms in snap.items():
                expected |= {f"odoo:{db}:{model}:{rid}:{m}" for m in ms}
    got = set(stored)
    assert expected <= got, f"lost: {sorted(expected - got)[:6]}"
    assert got <= expected | allowed, f"unexpected: {sorted(got - expected - allowed)[:6]}"
    for eid, e in stored.items():
        a = e["attributes"]
        assert a.get("precision") != "before_first_poll" and not e["type"].endswith(".observed"), e
        if eid not in by_id:
            continue
        if a["precision"] == "exact":
            assert e["occurred_at"] == iso_second(by_id[eid][0][0]), (e, by_id[eid])
        else:
            assert not tracking, e
            after, seen, at = parse(a["occurred_after"]), parse(a["seen_at"]), parse(e["occurred_at"])
            assert after <= at <= seen, e
            milestone = eid.rsplit(":", 1)[1]
            prefix = eid.rsplit(":", 1)[0]
            commits = [commit_at[msg] for k, v in by_id.items() if k.startswith(f"{prefix}:{milestone}")
                       for _, msg in v]
            assert any(after <= c <= seen for c in commits), (e, commits)
    # wizard payments: their own journey, linked to the invoice by the reconciliation
    for pid in fake.tables["account.payment"]:
        cid = f"odoo:{db}:account.payment:{pid}"
        assert stored[f"odoo:{db}:account.payment:{pid}:created"]["correlation_id"] == cid
    for part_id in fake.tables["account.partial.reconcile"]:
        settle = stored[f"odoo:{db}:account.partial.reconcile:{part_id}:reconciled"]
        inv = stored[f"odoo:{db}:account.partial.reconcile:{part_id}:invoice"]
        assert inv["attributes"]["settled_by"] == settle["correlation_id"]
        assert settle["attributes"]["invoice_correlation_id"] == inv["correlation_id"]


@pytest.mark.parametrize("tracking", [True, False], ids=["tracking", "no_tracking"])
@pytest.mark.parametrize("version", [16, 17, 18, 19])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(plan=ops, poll_at=polls)
def test_every_transition_once_and_dated_within_its_interval(version, tracking, plan, poll_at):
    note(f"plan={plan!r} poll_at={poll_at!r}")
    fake, stored, snapshots, commit_at = simulate(version, tracking, plan, poll_at)
    check(fake, stored, snapshots, commit_at, tracking)


def test_create_then_post_in_one_second_after_a_poll_is_delivered_on_every_version():
    """The defect this second pass fixes: a poll reads the draft, the posting commits in the same second."""
    for version in (16, 17, 18, 19):
        plan = [("create", 0, 0.1, 0.0), ("post", 0, 0.6, 0.0)]
        fake, stored, snapshots, commit_at = simulate(version, False, plan, [0.3])
        inv = next(iter(r for r in fake.tables["account.move"].values() if r["move_type"] == "out_invoice"))
        posted = stored[f"odoo:prod:account.move:{inv['id']}:posted"]
        assert posted["attributes"]["precision"] == "poll"
        check(fake, stored, snapshots, commit_at, False)


def test_two_wizard_payments_of_one_invoice_are_two_journeys_linked_by_reconciliation():
    for version in (16, 17, 18, 19):
        plan = [("create_post", 0, 0.0, 0.0), ("pay", 0, 0.5, 0.0), ("pay", 0, 0.8, 0.0)]
        fake, stored, snapshots, commit_at = simulate(version, True, plan, [])
        pays = sorted(fake.tables["account.payment"])
        assert len(pays) == 2
        field = "memo" if version >= 18 else "ref"
        assert {fake.tables["account.payment"][p][field] for p in pays} == {f"INV/{min(fake.tables['account.move'])}"}
        posted = [stored[f"odoo:prod:account.payment:{p}:posted"] for p in pays]
        assert [e["correlation_id"] for e in posted] == [f"odoo:prod:account.payment:{p}" for p in pays]
        inv_cid = f"odoo:prod:account.move:{min(fake.tables['account.move'])}"
        links = [e for e in stored.values() if e["type"] == "payment.reconciled" and e["correlation_id"] == inv_cid]
        assert sorted(e["attributes"]["settled_by"] for e in links) == [e["correlation_id"] for e in posted]
        assert f"{inv_cid}:partial" in stored and f"{inv_cid}:paid" in stored
        check(fake, stored, snapshots, commit_at, True)


@pytest.mark.parametrize("version", [16, 17, 18])
def test_a_gateway_payment_posted_in_the_second_a_poll_read_its_draft(version):
    """16/17: posting writes the payment's move only (`_inherits`), in the same second as the poll that read the
    draft — neither the payment's stamp nor the move's displayed stamp moves, the move's version token does."""
    fake = FakeOdoo(version, seed_data=False, now=T0, queue_job=False)
    now = [T0]
    probe = fake_odoo.in_process_probe(fake, lambda: now[0].replace(tzinfo=UTC), lookback_minutes=1)
    stored: dict[str, dict] = {}

    def poll():
        result = probe.run(EVENT_SECTIONS)
        for e in result.events:
            stored.setdefault(e["event_id"], e)
        result.commit()
    poll()
    with fake.transaction(T0 + dt.timedelta(milliseconds=100)) as tx:
        vals = dict(amount=25.0, currency_id=1, company_id=1, payment_type="inbound", payment_reference="ch_3PqX",
                    is_reconciled=False, is_matched=False)
        move = tx.create("account.move", name="/", state="draft", move_type="entry", amount_total=25.0, currency_id=1,
                         company_id=1)
        if version < 18:
            pay = tx.create("account.payment", move_id=move, ref="gateway", **vals)
            tx.write("account.move", move, payment_id=pay)
        else:
            pay = tx.create("account.payment", move_id=move, state="draft", memo="gateway", name="/", **vals)
            tx.write("account.move", move, origin_payment_id=pay)
    now[0] = T0 + dt.timedelta(milliseconds=300)
    poll()
    assert f"odoo:prod:account.payment:{pay}:created" in stored and f"odoo:prod:account.payment:{pay}:posted" \
        not in stored
    with fake.transaction(T0 + dt.timedelta(milliseconds=600)) as tx:
        tx.post(move, "PBNK1/2026/00099")
        if version >= 18:
            tx.write("account.payment", pay, state="in_process", name="PBNK1/2026/00099")
    for k in range(1, 4):
        now[0] = T0 + dt.timedelta(seconds=k)
        poll()
    posted = stored[f"odoo:prod:account.payment:{pay}:posted"]
    assert posted["correlation_id"] == "ch_3PqX"                     # the gateway's reference correlates
    assert posted["attributes"]["precision"] == "exact" and posted["occurred_at"] == "2026-11-02T09:00:00Z"
