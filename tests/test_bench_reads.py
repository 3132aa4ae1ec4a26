"""The read-capacity floor bench/reads_under_ingest.py prints beside its targets (issue #27): the arithmetic that says
how many read cycles the CPU ingest can spare pays for, checked by hand."""
from __future__ import annotations

import pytest

from bench.reads_under_ingest import ceiling, lookup_budget

KINDS = ("/api/v1/slos", "/api/v1/slos/pp", "journey")


def test_ceiling_is_the_spare_cpu_over_one_cycle_and_the_closed_loop_wait():
    costs = {"/api/v1/slos": 0.0005, "/api/v1/slos/pp": 0.0005, "journey": 0.012}    # 13 ms per cycle
    per_s, wait_ms = ceiling(costs, KINDS, busy_cores=2.0)
    assert per_s == pytest.approx(0.15 * 2.0 / 0.013)                # 23.1 cycles/s
    assert wait_ms == pytest.approx(10 / per_s * 1000)                # 433 ms: each reader waits for the other nine
    assert ceiling(costs, KINDS, busy_cores=2.0, share=0.30)[0] == pytest.approx(2 * per_s)


def test_lookup_budget_leaves_the_other_reads_their_cost():
    costs = {"/api/v1/slos": 0.0005, "/api/v1/slos/pp": 0.0005, "journey": 0.012}
    budget = lookup_budget(costs, KINDS, busy_cores=2.0)
    assert budget == pytest.approx((0.15 * 2.0 * 0.15 / 10 - 0.001) * 1000)       # 3.5 ms
    # a lookup of exactly that cost gives the 150 ms mean wait the budget is for
    assert ceiling({**costs, "journey": budget / 1000}, KINDS, 2.0)[1] == pytest.approx(150)
