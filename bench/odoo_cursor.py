"""Cost of the Odoo write_date cursor's lookback (probes/odoo_cursor.py), measured in one run against the Odoo test
double's ORM (tests/support/fake_odoo.py, in-process, no HTTP): an hour of changes at a steady rate plus one
cron transaction writing a block of rows with one stamp, polled every minute. Prints, per poll: search calls, rows
scanned (id and write_date only), rows delivered, the rescan overhead (scanned / delivered) and the size of the
seen map — the price paid for never stalling or losing rows.

`--burst N` (default 10,000) then measures the probe end to end (probes/odoo.py, invoices section, through the
double's in-process JSON-RPC door) on the integration pattern that lost postings before version tokens: N invoices
each created then posted by two separate calls in the same second, N/2 000 seconds of them, polled every
`--burst-poll` seconds while they land, without and with read access to mail.tracking.value. Prints the events
expected (created + posted per invoice), stored (distinct ids: the collector keeps the first copy), lost, extra,
probe-side re-emissions of an id, mis-dated postings, and the poll cost per delivered record (calls, rows scanned);
and, for comparison, how many postings the stamp-only cursor of the first pass loses on the same burst.

    python bench/odoo_cursor.py [--per-minute 50] [--block 3000] [--lookback 20] [--page 500] [--burst 10000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.odoo_cursor import CursorState, WriteDateCursor  # noqa: E402
from tests.support import fake_odoo  # noqa: E402
from tests.support.fake_odoo import FakeOdoo  # noqa: E402

UTC = dt.timezone.utc


PER_SECOND, POST_AFTER = 2000, 0.15


def pairs(n: int) -> list[tuple[float, str, int]]:
    """The burst's calls in time order: invoice k created at k / 2 000 s and posted 150 ms later — the next call of
    the integration, in the same second unless the create came in its last 150 ms."""
    calls = [(k / PER_SECOND, "create", k) for k in range(n)] + [(k / PER_SECOND + POST_AFTER, "post", k)
                                                                 for k in range(n)]
    return sorted(calls)


def burst(n: int, every: float, page: int, tracking: bool) -> dict:
    """N create-then-post pairs (`pairs`), polled every `every` s; returns the counts printed by main()."""
    t0 = dt.datetime(2026, 11, 2, 9, 0)
    fake = FakeOdoo(17, seed_data=False, now=t0, queue_job=False,
                    groups=fake_odoo.ALL_GROUPS if tracking else fake_odoo.LEAST_PRIVILEGED)
    now = [t0 - dt.timedelta(seconds=1)]
    calls = [0]
    inner = fake.transport()

    def counting(request):
        calls[0] += 1
        return inner.handle_request(request)
    probe = fake_odoo.in_process_probe(fake, lambda: now[0].replace(tzinfo=UTC), httpx.MockTransport(counting),
                                       lookback_minutes=1, page_size=page, max_pages=1000)
    scanned = [0]
    real_search_read = probe.client.search_read

    def search_read(model, domain, fields, **kw):
        rows = real_search_read(model, domain, fields, **kw)
        if model == "account.move" and "write_date" in fields and any(
                isinstance(d, (list, tuple)) and d[0] == "write_date" for d in domain):
            scanned[0] += len(rows)
        return rows
    probe.client.search_read = search_read            # type: ignore[method-assign]
    stored: dict[str, dict] = {}
    emitted = polls = 0
    posted_at: dict[int, dt.datetime] = {}

    def poll():
        nonlocal emitted, polls
        result = probe.run(("invoices",))
        emitted += len(result.events)
        polls += 1
        for e in result.events:
            stored.setdefault(e["event_id"], e)
        result.commit()
    poll()
    calls[0] = scanned[0] = 0
    next_poll = every
    created: dict[int, int] = {}
    for at, what, k in pairs(n):
        while at >= next_poll:
            now[0] = t0 + dt.timedelta(seconds=next_poll)
            poll()
            next_poll += every
        stamp = t0 + dt.timedelta(seconds=at)
        with fake.transaction(stamp) as tx:
            if what == "create":
                created[k] = tx.create("account.move", name="/", state="draft", move_type="out_invoice",
                                       amount_total=10.0, amount_residual=10.0, currency_id=1, company_id=1,
                                       payment_state="not_paid")
            else:
                tx.post(created[k], f"INV/{created[k]}", f"INV/{created[k]}")
                posted_at[created[k]] = stamp
    for j in range(3):
        now[0] = t0 + dt.timedelta(seconds=n / PER_SECOND + 1 + every * (j + 1))
        poll()
    expected = {f"odoo:prod:account.move:{i}:{w}" for i in posted_at for w in ("created", "posted")}
    misdated = 0
    for i, stamp in posted_at.items():
        e = stored.get(f"odoo:prod:account.move:{i}:posted")
        if e is None:
            continue
        a, at = e["attributes"], e["occurred_at"]
        if a["precision"] == "exact":
            misdated += at != stamp.replace(microsecond=0).isoformat() + "Z"
        else:                                            # occurred_after ≤ occurred_at ≤ seen_at
            lo, t, hi = (dt.datetime.fromisoformat(v.replace("Z", "+00:00")) for v in
                         (a["occurred_after"], at, a["seen_at"]))
            misdated += not lo <= t <= hi
    return {"expected": len(expected), "stored": len(set(stored) & expected), "lost": len(expected - set(stored)),
            "extra": len(set(stored) - expected), "reemitted": emitted - len(stored), "misdated": misdated,
            "polls": polls, "calls": calls[0], "scanned": scanned[0], "records": len(posted_at)}


def stamp_only_losses(n: int, every: float, page: int) -> int:
    """The first pass's cursor (stamp only) on the same burst: postings never delivered."""
    t0 = dt.datetime(2026, 11, 2, 9, 0)
    fake = FakeOdoo(17, seed_data=False, now=t0, queue_job=False)
    cursor = WriteDateCursor(dt.timedelta(minutes=1), page, 1000)
    state = CursorState()
    last_state: dict[int, str] = {}

    def search(domain, order, limit):
        return fake.execute("account.move", "search_read", [domain],
                            {"fields": ["id", "write_date", "state"], "order": order, "limit": limit})
    next_poll = every
    ids: dict[int, int] = {}
    for at, what, k in pairs(n):
        while at >= next_poll:
            out = cursor.poll(state, search)
            state = out.state
            last_state.update({r["id"]: r["state"] for r in out.rows})
            next_poll += every
        with fake.transaction(t0 + dt.timedelta(seconds=at)) as tx:
            if what == "create":
                ids[k] = tx.create("account.move", name="/", state="draft", move_type="out_invoice")
            else:
                tx.post(ids[k], f"INV/{ids[k]}")
    for _ in range(2):
        out = cursor.poll(state, search)
        state = out.state
        last_state.update({r["id"]: r["state"] for r in out.rows})
    return sum(1 for i in ids.values() if last_state.get(i) != "posted")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-minute", type=int, default=50)
    ap.add_argument("--block", type=int, default=3000)
    ap.add_argument("--lookback", type=float, default=20)
    ap.add_argument("--page", type=int, default=500)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--burst", type=int, default=10_000)
    ap.add_argument("--burst-poll", type=float, default=0.37)
    a = ap.parse_args()
    t0 = dt.datetime(2026, 11, 2, 9, 0)
    fake = FakeOdoo(17, seed_data=False, now=t0)
    cursor = WriteDateCursor(dt.timedelta(minutes=a.lookback), a.page, 10_000)
    state = CursorState()
    calls = scanned = 0

    def search(domain, order, limit):
        nonlocal calls, scanned
        calls += 1
        rows = fake.execute("account.move", "search_read", [domain],
                            {"fields": ["id", "write_date"], "order": order, "limit": limit})
        scanned += len(rows)
        return rows
    stats = []
    started = time.perf_counter()
    for minute in range(a.minutes):
        for k in range(a.per_minute):                      # one transaction per change, spread over the minute
            with fake.transaction(t0 + dt.timedelta(minutes=minute, seconds=60 * k / a.per_minute)) as tx:
                tx.create("account.move", name=f"m{minute}-{k}", move_type="out_invoice", state="draft")
        if minute == a.minutes // 2:                       # a cron: one transaction, one stamp, a block of rows
            with fake.transaction(t0 + dt.timedelta(minutes=minute, seconds=30)) as tx:
                for k in range(a.block):
                    tx.create("account.move", name=f"cron-{k}", move_type="entry", state="draft")
        calls = scanned = 0
        out = cursor.poll(state, search)
        state = out.state
        stats.append((calls, scanned, len(out.rows), len(state.seen), out.complete))
    elapsed = time.perf_counter() - started
    steady = [s for s in stats[int(a.lookback) + 1:] if s[2] <= a.per_minute * 2]
    delivered = sum(s[2] for s in stats)
    total = a.minutes * a.per_minute + a.block
    print(f"changes {total}, delivered {delivered} (lost {total - delivered}), all polls complete: "
          f"{all(s[4] for s in stats)}")
    print(f"steady polls: calls/poll median {statistics.median(s[0] for s in steady):.0f}, rows scanned/poll median "
          f"{statistics.median(s[1] for s in steady):.0f}, delivered/poll median "
          f"{statistics.median(s[2] for s in steady):.0f}, rescan ratio "
          f"{statistics.median(s[1] / max(1, s[2]) for s in steady):.1f}")
    block_poll = max(stats, key=lambda s: s[2])
    print(f"poll with the {a.block}-row block: {block_poll[0]} calls, {block_poll[1]} rows scanned, "
          f"{block_poll[2]} delivered")
    print(f"seen map: max {max(s[3] for s in stats)} entries (≈ changes within lookback + 1 poll: "
          f"{int(a.per_minute * (a.lookback + 1) + a.block)})")
    print(f"cursor + double ORM time per poll: {1000 * elapsed / a.minutes:.1f} ms (in-process)")
    if a.burst:
        print(f"\nburst: {a.burst} invoices created then posted 150 ms later, {a.burst / PER_SECOND:g} s of them, "
              f"polled every {a.burst_poll} s (probe end to end, Odoo 17, pages of {a.page})")
        for tracking in (True, False):
            started = time.perf_counter()
            r = burst(a.burst, a.burst_poll, a.page, tracking)
            took = time.perf_counter() - started
            print(f"  {'with' if tracking else 'without'} tracking: expected {r['expected']} events, stored "
                  f"{r['stored']}, lost {r['lost']}, extra {r['extra']}, mis-dated {r['misdated']}, probe "
                  f"re-emissions {r['reemitted']}; {r['polls']} polls, {r['calls'] / r['records']:.3f} calls and "
                  f"{r['scanned'] / r['records']:.1f} rows scanned per invoice ({took:.0f} s in-process)")
        print(f"  stamp-only cursor (first pass) on the same burst: {stamp_only_losses(a.burst, a.burst_poll, a.page)}"
              f" of {a.burst} postings never delivered")


if __name__ == "__main__":
    main()
