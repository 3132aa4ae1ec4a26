"""Exhaustion-time alerts on a constructed burn (hand counts), and in the generated Prometheus rules (golden file,
promtool)."""
import datetime as dt
import subprocess

import pytest

from slo.engine import SloEngine
from slo.rules import render, rule_groups, write_rules
from slo.spec import resolve
from tests.support.slo_data import anchor
from tests.test_slo_composite import traffic
from tests.test_slo_rules import PROMTOOL, _golden_check, need_promtool

M = dt.timedelta(minutes=1)
CFG = """
server: {external_url: "https://revwatch.example.com"}
slos:
  - name: api
    objective: 0.99
    window: 1d
    owner: ana
    sli: {kind: span_ratio, service: sa, bad_when: {StatusCode: Error}}
    alerting:
      exhaustion: [{within: 4h, severity: page, burn_window: 1h}, {within: 10m, severity: ticket, burn_window: 6h}]
"""


def test_exhaustion_alert_on_a_constructed_burn(store, make_config):
    T = anchor(3)
    traffic(store, T - 25 * 60 * M, 23 * 60, "sa")                    # 23 h all good, 10 spans a minute
    traffic(store, T - 120 * M, 120, "sa", every_nth_bad=10)          # then 2 h with every 10th span failing
    at = T - dt.timedelta(seconds=30)
    [r] = SloEngine(store, make_config(CFG)).evaluate(at)
    # 1d window (at − 24 h, at]: 14,400 spans, 120 of them bad (k = 0, 10, …, 1190 of the bad run); budget
    # 1 % = 144, left 1 − 120/144 = 1/6. 1h window: 600 spans, 60 bad: burn 10. Left at that pace:
    # 1/6 × 1 day / 10 = 0.4 h = 24 min
    assert (r.windows["slo"].total, r.windows["slo"].total - r.windows["slo"].good) == (14400, 120)
    assert r.budget["remaining_ratio"] == pytest.approx(1 / 6) and r.windows["1h"].burn_rate == pytest.approx(10)
    page, ticket = [a for a in r.alerts if a.get("kind") == "exhaustion"]
    assert page["exhausted_in_hours"] == pytest.approx(0.4) and page["firing"] and page["within"] == "4h"
    assert page["threshold"] == pytest.approx((1 / 6) * 1 / (4 / 24))        # the burn that lasts exactly 4 h
    # 6h window: 3600 spans, 120 bad: burn 3.33 → 1/6 day / 3.33 = 1.2 h > 10 min: no ticket
    assert ticket["exhausted_in_hours"] == pytest.approx(1.2) and not ticket["firing"]
    assert r.state == "page"
    assert r.budget["days_until_exhausted"]["1h"] == pytest.approx(0.4 / 24)


def test_exhaustion_in_generated_rules(make_config, tmp_path):
    [spec] = resolve(make_config(CFG))
    text = render(rule_groups(spec, "https://revwatch.example.com"))
    _golden_check("exhaustion/revwatch-slo-api.rules.yml", text)
    page, ticket = rule_groups(spec, "https://revwatch.example.com")[0]["rules"]
    assert ('max without (burn_window) (revwatch_slo_error_budget_exhausted_in_seconds{slo="api",burn_window="1h"}'
            ' <= 14400)') in page["expr"]
    assert 'burn_window="6h"} <= 600)' in ticket["expr"] and 'burn_window="1h"' not in ticket["expr"]


@need_promtool
def test_exhaustion_rules_pass_promtool(make_config, tmp_path):
    files = write_rules(resolve(make_config(CFG)), tmp_path, "https://revwatch.example.com")
    r = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
