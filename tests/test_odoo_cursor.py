"""The write_date cursor against random transaction interleavings on the fake Odoo's ORM: transactions stamped at
their start (microseconds, one stamp each), committing in any order and any time later, blocks larger than a page,
updates of committed rows, polls at random instants, restarts from the persisted JSON and crashes that lose a
poll's work. Property: every record version that is still current when the cursor settles is delivered, and no
(id, write_date) is delivered twice — with a lookback longer than the longest transaction plus the poll interval."""
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from probes.odoo_cursor import CursorState, WriteDateCursor, shift, version_token
from tests.support.fake_odoo import FakeOdoo, SerializationFailure

T0 = dt.datetime(2026, 11, 2, 9, 0, 0)

transactions = st.lists(st.tuples(
    st.floats(0, 240, allow_nan=False),        # start (seconds after T0)
    st.floats(0, 30, allow_nan=False),         # duration: the longest transaction is 30 s
    st.integers(0, 12),                        # records created
    st.integers(0, 4)),                        # committed records updated
    min_size=1, max_size=14)
polls = st.lists(st.tuples(st.floats(0, 300, allow_nan=False),
                           st.sampled_from(["ok", "ok", "ok", "restart", "crash"])), min_size=1, max_size=25)


def simulate(txs, poll_plan, page_size, max_pages, lookback_s, token=False):
    fake = FakeOdoo(17, seed_data=False, now=T0)
    cursor = WriteDateCursor(dt.timedelta(seconds=lookback_s), page_size, max_pages)
    timeline = []
    for n, (start, duration, creates, updates) in enumerate(txs):
        timeline.append((start + duration, 0, n, (start, creates, updates)))
    for start, kind in poll_plan:
        timeline.append((start, 1, 0, kind))
    last_commit: dict[int, float] = {}               # id -> commit time of its last writer
    saved = CursorState().to_json()
    state = CursorState.from_json(saved)
    delivered: list[tuple[int, str]] = []

    fields = ["id", "write_date"] + (["ref"] if token else [])

    def search(domain, order, limit):
        return fake.execute("account.move", "search_read", [domain],
                            {"fields": fields, "order": order, "limit": limit})

    def version(r):
        return (r["id"], r["ref"] if token else r["write_date"])

    def poll(kind):
        nonlocal state, saved
        if kind == "restart":
            state = CursorState.from_json(saved)
        out = cursor.poll(state, search, (lambda r: version_token(r, ["ref"])) if token else None)
        if kind == "crash":                          # the run dies before handing rows over: nothing persisted
            state = CursorState.from_json(saved)
            return out
        delivered.extend(version(r) for r in out.rows)
        state, saved = out.state, out.state.to_json()
        return out

    for at, is_poll, n, what in sorted(timeline, key=lambda x: (x[0], x[1], x[2])):
        if is_poll:
            poll(what)
            continue
        start, creates, updates = what
        tx = fake.begin(T0 + dt.timedelta(seconds=start))
        ids = [tx.create("account.move", name=f"tx{n}-{k}", move_type="entry", state="draft")
               for k in range(creates)]
        # REPEATABLE READ: a transaction can only write rows whose last writer committed before it started
        eligible = sorted(i for i, c in last_commit.items() if c <= start)
        for i in eligible[:updates]:
            tx.write("account.move", i, ref=f"upd{n}-{i}")          # every write makes a distinct version
        tx.commit()
        for i in ids + eligible[:updates]:
            last_commit[i] = at
    # quiescence: poll until a second cycle completes — it started after the last commit (bounded: no stall)
    complete = 0
    for _ in range(1000):
        complete += poll("ok").complete
        if complete == 2:
            break
    else:
        raise AssertionError("the cursor never settled")
    final = {version(r) for r in search([], "id asc", None)}
    return delivered, final, state


def check(delivered, final):
    assert len(delivered) == len(set(delivered)), "a record version was delivered twice"
    missing = final - set(delivered)
    assert not missing, f"lost: {sorted(missing)[:5]}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=transactions, poll_plan=polls, page_size=st.integers(1, 5))
def test_no_loss_no_duplicate_with_lookback_over_longest_transaction(txs, poll_plan, page_size):
    # lookback 60 s ≥ longest transaction (30 s) + largest gap between polls while writes go on (≤ 30 s here)
    plan = poll_plan + [(t, "ok") for t in range(0, 300, 25)]
    delivered, final, state = simulate(txs, plan, page_size, max_pages=10_000, lookback_s=61)
    check(delivered, final)
    assert all(w >= shift(state.high_water, -61) for w, _ in state.seen.values())     # the seen set is pruned


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=transactions, poll_plan=polls, page_size=st.integers(1, 3), max_pages=st.integers(1, 3))
def test_tiny_page_budget_never_stalls_and_resumes(txs, poll_plan, page_size, max_pages):
    # a budget far smaller than one transaction: each cycle spans many polls and resumes where it stopped
    delivered, final, _ = simulate(txs, poll_plan, page_size, max_pages, lookback_s=10 ** 6)
    check(delivered, final)


same_second = st.lists(st.tuples(
    st.integers(0, 3).map(float) | st.floats(0, 3, allow_nan=False),   # starts crowd into a few seconds
    st.floats(0, 30, allow_nan=False) | st.just(0.0),
    st.integers(0, 4),
    st.integers(0, 4)),
    min_size=1, max_size=14)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(txs=same_second, poll_plan=polls, page_size=st.integers(1, 5))
def test_versions_committed_within_one_second_are_each_delivered_once(txs, poll_plan, page_size):
    """create-then-write in one second, read between them: the stamp shows no change, the token does. Every
    write makes a new version (a distinct ref), so each version current at some instant the cursor settles on
    is delivered, and none twice."""
    plan = poll_plan + [(t / 4, "ok") for t in range(0, 40)]          # polls every 250 ms, between commits
    delivered, final, state = simulate(txs, plan, page_size, max_pages=10_000, lookback_s=61, token=True)
    check(delivered, final)
    assert all(t is not None for _, t in state.seen.values())


def test_the_stamp_alone_loses_a_change_in_the_same_second_and_the_token_does_not():
    fake = FakeOdoo(17, seed_data=False, now=T0)
    with fake.transaction(T0 + dt.timedelta(microseconds=100_000)) as tx:
        rid = tx.create("account.move", name="/", move_type="out_invoice", state="draft")

    def search(domain, order, limit):
        return fake.execute("account.move", "search_read", [domain],
                            {"fields": ["id", "write_date", "state"], "order": order, "limit": limit})
    cursor = WriteDateCursor(dt.timedelta(minutes=15), 100, 10)
    by_stamp = cursor.poll(CursorState(), search)
    by_token = cursor.poll(CursorState(), search, lambda r: version_token(r, ["state"], r["state"]))
    with fake.transaction(T0 + dt.timedelta(microseconds=600_000)) as tx:       # action_post, same second
        tx.post(rid, "INV/1", "INV/1")
    assert cursor.poll(by_stamp.state, search).rows == []                        # the defect this fixes
    again = cursor.poll(by_token.state, search, lambda r: version_token(r, ["state"], r["state"]))
    assert [r["state"] for r in again.rows] == ["posted"]
    assert again.previous[rid] is not None and again.previous[rid][1].startswith("draft#")
    restarted = CursorState.from_json(again.state.to_json())
    assert cursor.poll(restarted, search, lambda r: version_token(r, ["state"], r["state"])).rows == []


def test_a_block_of_one_second_larger_than_pages_is_paged_through():
    """One cron transaction writes 50 rows (one stamp); pages of 7: a `>`/`=` keyset would stall or repeat."""
    fake = FakeOdoo(17, seed_data=False, now=T0)
    with fake.transaction(T0 + dt.timedelta(microseconds=654321)) as tx:
        for k in range(50):
            tx.create("account.move", name=f"c{k}", move_type="entry", state="draft")
    calls = []

    def search(domain, order, limit):
        calls.append(domain)
        return fake.execute("account.move", "search_read", [domain],
                            {"fields": ["id", "write_date"], "order": order, "limit": limit})
    out = WriteDateCursor(dt.timedelta(minutes=15), 7, 100).poll(CursorState(), search)
    assert out.complete and len(out.rows) == 50 == len({r["id"] for r in out.rows})
    # the stamp has microseconds: an `=` on the displayed second matches nothing, so the id pass uses a range
    assert fake.execute("account.move", "search_count", [[("write_date", "=", out.rows[0]["write_date"])]], {}) == 0
    assert ("write_date", "<", shift(out.rows[0]["write_date"], 1)) in calls[1]
    again = WriteDateCursor(dt.timedelta(minutes=15), 7, 100).poll(out.state, search)
    assert again.complete and again.rows == []


def test_late_commit_behind_the_cursor_is_seen():
    """A long transaction stamped 09:00 commits at 09:10, after the cursor read 09:05: the lookback finds it."""
    fake = FakeOdoo(17, seed_data=False, now=T0)
    long_tx = fake.begin(T0)
    late = long_tx.create("account.move", name="late", move_type="entry", state="draft")
    with fake.transaction(T0 + dt.timedelta(minutes=5)) as tx:
        tx.create("account.move", name="early", move_type="entry", state="draft")

    def search(domain, order, limit):
        return fake.execute("account.move", "search_read", [domain],
                            {"fields": ["id", "write_date"], "order": order, "limit": limit})
    cursor = WriteDateCursor(dt.timedelta(minutes=15), 100, 10)
    first = cursor.poll(CursorState(), search)
    assert [r["id"] for r in first.rows] == [late + 1]
    long_tx.commit()
    second = cursor.poll(CursorState.from_json(first.state.to_json()), search)
    assert [r["id"] for r in second.rows] == [late]
    short = WriteDateCursor(dt.timedelta(minutes=2), 100, 10).poll(first.state, search)
    assert short.rows == []                          # a lookback shorter than the transaction loses it


def test_the_double_refuses_two_transactions_writing_one_row():
    """Why a record's write_date only grows: the second writer of a row fails and is retried with a new stamp."""
    fake = FakeOdoo(17, seed_data=False, now=T0)
    with fake.transaction(T0) as tx:
        rid = tx.create("account.move", name="x", move_type="entry", state="draft")
    slow, fast = fake.begin(T0 + dt.timedelta(seconds=1)), fake.begin(T0 + dt.timedelta(seconds=2))
    slow.write("account.move", rid, ref="slow")
    fast.write("account.move", rid, ref="fast")
    fast.commit()
    with pytest.raises(SerializationFailure):
        slow.commit()
    retry = fake.begin(T0 + dt.timedelta(seconds=3))
    retry.write("account.move", rid, ref="slow")
    retry.commit()
    assert fake.tables["account.move"][rid]["write_date"] == T0 + dt.timedelta(seconds=3)


def test_state_from_the_earlier_cursor_format_is_read():
    st_ = CursorState.from_json('{"ts": "2026-11-02 09:00:00", "ids": [1, 2]}')
    assert st_.high_water == "2026-11-02 09:00:00" and st_.seen == {}


def test_state_of_the_stamp_only_cursor_is_read_and_its_rows_are_delivered_once_more():
    fake = FakeOdoo(17, seed_data=False, now=T0)
    with fake.transaction(T0) as tx:
        rid = tx.create("account.move", name="/", move_type="out_invoice", state="draft")

    def search(domain, order, limit):
        return fake.execute("account.move", "search_read", [domain],
                            {"fields": ["id", "write_date", "state"], "order": order, "limit": limit})
    old = CursorState.from_json('{"high_water": "2026-11-02 09:00:00", "seen": [[%d, "2026-11-02 09:00:00"]], '
                                '"lower": null, "resume": null, "cycles": 3}' % rid)
    assert old.seen == {rid: ("2026-11-02 09:00:00", None)} and old.cycles == 3

    def tok(r):
        return version_token(r, ["state"], r["state"])
    cursor = WriteDateCursor(dt.timedelta(minutes=15), 100, 10)
    first = cursor.poll(old, search, tok)
    assert [r["id"] for r in first.rows] == [rid] and first.previous[rid] == ("2026-11-02 09:00:00", None)
    assert cursor.poll(first.state, search, tok).rows == []
