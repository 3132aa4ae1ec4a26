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
from slo.conditions import conditions
from tests.test_slo_rules import PROMTOOL, _golden_check, need_promtool, promtool_firing

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
    rules = rule_groups(spec, "https://revwatch.example.com")[0]["rules"]
    tiers = {(r["labels"]["severity"], r["labels"]["alert_tier"]): r["expr"] for r in rules if "record" in r}
    assert ('count without (burn_window) (revwatch_slo_error_budget_exhausted_in_seconds{slo="api",burn_window="1h"}'
            ' <= 14400') in tiers[("page", "exhaustion 1h within 4h")]
    assert 'burn_window="6h"} <= 600' in tiers[("ticket", "exhaustion 6h within 10m")]
    assert [r["alert"] for r in rules if "alert" in r] == ["RevwatchSLOBurnRatePage", "RevwatchSLOBurnRateTicket"]


ALONE = CFG.replace("exhaustion: [{within: 4h, severity: page, burn_window: 1h}, {within: 10m, severity: ticket, "
                    "burn_window: 6h}]",
                    "page: []\n      ticket: []\n      exhaustion: [{within: 4h, severity: ticket, burn_window: 1h}]")


def test_exhaustion_tier_alone_alerts_in_the_engine_and_the_direct_path(store, make_config):
    """A severity with an exhaustion tier and no burn-rate pairs (here: no pairs at all) still alerts."""
    assert ALONE != CFG
    T = anchor(3)
    traffic(store, T - 25 * 60 * M, 23 * 60, "sa")                    # the constructed burn above: 24 min left
    traffic(store, T - 120 * M, 120, "sa", every_nth_bad=10)
    [r] = SloEngine(store, make_config(ALONE)).evaluate(T - dt.timedelta(seconds=30))
    assert r.spec.tiers == ()
    [entry] = r.alerts
    assert entry["kind"] == "exhaustion" and entry["firing"] and entry["exhausted_in_hours"] == pytest.approx(0.4)
    assert r.state == "ticket"
    [cond] = conditions([r], "https://revwatch.example.com")
    assert cond.active and cond.labels["alertname"] == "RevwatchSLOBurnRateTicket" and cond.hold_for == dt.timedelta(0)
    assert "budget exhausted in 0.4 h at the 1h burn rate 10.0x (fires within 4h)" in cond.annotations["description"]


@need_promtool
def test_promtool_unit_exhaustion_tier_alone_fires_and_holds(make_config, tmp_path):
    """Generated rules of an exhaustion tier alone, in Prometheus's rule engine: g1 keeps burning (fires), g2's
    forecast goes away (not burning: revwatch stops exposing it, a staleness marker) with data in its window
    (resolves), g3's window goes empty as well (holds its firing state)."""
    [spec] = resolve(make_config(ALONE))
    [group] = rule_groups(spec, "https://revwatch.example.com")
    assert [r.get("alert") for r in group["rules"]] == [None, "RevwatchSLOBurnRateTicket"]
    series = {}
    for g, left, events in (("g1", "3600x9", "100x9"), ("g2", "3600 3600 3600 3600 3600 stale _ _ _ _", "100x9"),
                            ("g3", "3600 3600 3600 3600 3600 stale _ _ _ _", "100 100 100 100 100 0 0 0 0 0")):
        series[f'revwatch_slo_error_budget_exhausted_in_seconds{{slo="api",group="{g}",burn_window="1h"}}'] = left
        series[f'revwatch_slo_window_events{{slo="api",group="{g}",window="1h"}}'] = events
    ticket = {"slo": "api", "severity": "ticket", "owner": "ana"}
    promtool_firing(tmp_path, spec, series, [
        ("3m", "RevwatchSLOBurnRateTicket", [{**ticket, "group": g} for g in ("g1", "g2", "g3")]),
        ("8m", "RevwatchSLOBurnRateTicket", [{**ticket, "group": g} for g in ("g1", "g3")])])


@need_promtool
def test_exhaustion_rules_pass_promtool(make_config, tmp_path):
    files = write_rules(resolve(make_config(CFG)), tmp_path, "https://revwatch.example.com")
    r = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
