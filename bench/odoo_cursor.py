"""Cost of the Odoo write_date cursor's lookback (probes/odoo_cursor.py), measured in one run against the Odoo test
double's ORM (tests/support/fake_odoo.py, in-process, no HTTP): an hour of changes at a steady rate plus one
cron transaction writing a block of rows with one stamp, polled every minute. Prints, per poll: search calls, rows
scanned (id and write_date only), rows delivered, the rescan overhead (scanned / delivered) and the size of the
seen map — the price paid for never stalling or losing rows.

    python bench/odoo_cursor.py [--per-minute 50] [--block 3000] [--lookback 20] [--page 500]
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.odoo_cursor import CursorState, WriteDateCursor  # noqa: E402
from tests.support.fake_odoo import FakeOdoo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-minute", type=int, default=50)
    ap.add_argument("--block", type=int, default=3000)
    ap.add_argument("--lookback", type=float, default=20)
    ap.add_argument("--page", type=int, default=500)
    ap.add_argument("--minutes", type=int, default=60)
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


if __name__ == "__main__":
    main()
