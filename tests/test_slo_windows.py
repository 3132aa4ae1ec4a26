"""Window-scaled burn factors (budget-consumption rule), alert-window catalogues, unreachable tiers, reserved labels."""
import datetime as dt
from types import SimpleNamespace

import pytest
import yaml

from revwatch.config import Config
from slo.engine import SloResult, WindowResult, alert_state
from slo.spec import SpecError, resolve
from slo.windows import BUILTIN, burn_factor, load_alert_windows
from tests.support.servers import FIXTURES

WINDOWS = FIXTURES / "sloth" / "windows"
# the factors Sloth prints for its catalogues (docs: slo-practice §2.1), as Go computes them
SLOTH_FACTORS = {
    "30d": [14.4, 6.0, 3.0, 1.0],
    "28d": [13.44, 5.6000000000000005, 2.8000000000000003, 0.9333333333333333],
    "7d": [13.44, 3.5, 1.4000000000000001, 0.98],
}


def specs(doc: dict) -> dict:
    return {s.name: s for s in resolve(Config.model_validate(doc))}


def slo(name: str, window: str, objective: float = 0.999, **extra) -> dict:
    return {"name": name, "objective": objective, "window": window,
            "sli": {"kind": "span_ratio", "service": "odoo", "bad_when": {"StatusCode": "Error"}}, **extra}


def test_builtin_catalogues_are_sloths_files():
    upstream = {c.period: c for f in ("google-30d.yaml", "google-28d.yaml", "7d.yaml")
                for c in load_alert_windows(WINDOWS / f)}
    assert len(upstream) == 3
    for c in BUILTIN:
        assert [(t.severity, t.speed, t.budget_percent, t.short, t.long) for t in c.tiers] == \
               [(t.severity, t.speed, t.budget_percent, t.short, t.long) for t in upstream[c.period].tiers]


@pytest.mark.parametrize("window", ["30d", "28d", "7d"])
def test_factors_match_sloth_bit_for_bit(window):
    (spec,) = specs({"slos": [slo("a", window)]}).values()
    assert [t.burn_rate for t in spec.tiers] == SLOTH_FACTORS[window]
    assert [(t.severity, t.long, t.short) for t in spec.tiers] == [
        ("page", dt.timedelta(hours=1), dt.timedelta(minutes=5)),
        ("page", dt.timedelta(hours=6), dt.timedelta(minutes=30)),
        ("ticket", dt.timedelta(days=1), dt.timedelta(hours=2)),
        ("ticket", dt.timedelta(days=3), dt.timedelta(hours=6))]


def test_calendar_windows_scale_with_their_nominal_period_and_other_periods_with_the_google_shares():
    s = specs({"slos": [slo("m", "calendar_month"), slo("w", "calendar_week"), slo("q", "90d")]})
    assert [t.burn_rate for t in s["m"].tiers] == SLOTH_FACTORS["30d"]
    assert [t.burn_rate for t in s["w"].tiers] == SLOTH_FACTORS["7d"]
    # no catalogue for 90 d: the budget-consumption rule with Google's shares, 2 % in 1 h of 2160 h → 43.2
    assert [t.burn_rate for t in s["q"].tiers] == [burn_factor(dt.timedelta(days=90), p, lg) for p, lg in
                                                   ((2, dt.timedelta(hours=1)), (5, dt.timedelta(hours=6)),
                                                    (10, dt.timedelta(days=1)), (10, dt.timedelta(days=3)))]
    assert s["q"].tiers[0].burn_rate == pytest.approx(43.2)


def test_seven_day_ticket_fires_at_the_burn_a_thirty_day_one_ignores():
    """At 7 d a steady 0.98× burn for 3 days uses 42 % of the budget: Sloth's 7 d catalogue tickets it; the 30 d
    factors (1×) would wait. The engine's alert state uses the scaled factors."""
    s = specs({"slos": [slo("week", "7d", 0.99), slo("month", "30d", 0.99)]})
    states = {}
    for name, spec in s.items():
        windows = {w: WindowResult(10000 - 98, 10000, 0.99) for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "slo")}
        res = SloResult(spec, "", dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc), windows)
        alert_state(res)
        states[name] = res.state, [a["long"] for a in res.alerts if a["firing"]]
    assert states == {"week": ("ticket", ["3d"]), "month": ("ok", [])}


def test_custom_catalogue_replaces_the_builtin_for_its_period(tmp_path):
    doc = {"slos": [slo("a", "30d"), slo("b", "28d", alerting={"catalogue": "custom-30d"})],
           "slo_alert_windows": [str(WINDOWS / "custom-30d.yaml")]}
    s = specs(doc)
    # custom-30d: 1 % in 30 m → 1 × 720 / 100 / 0.5 = 14.4; long windows 30m, 3h, 12h, 36h
    assert [(t.long, t.short, t.burn_rate) for t in s["a"].tiers][:2] == [
        (dt.timedelta(minutes=30), dt.timedelta(minutes=2), 14.4),
        (dt.timedelta(hours=3), dt.timedelta(minutes=15), 4.8)]
    assert [t.long for t in s["b"].tiers] == [dt.timedelta(minutes=30), dt.timedelta(hours=3), dt.timedelta(hours=12),
                                             dt.timedelta(hours=36)]
    assert s["b"].tiers[0].burn_rate == burn_factor(dt.timedelta(days=28), 1, dt.timedelta(minutes=30))
    with pytest.raises(SpecError, match="unknown alert window catalogue 'nope'"):
        specs({"slos": [slo("c", "30d", alerting={"catalogue": "nope"})]})
    bad = tmp_path / "w.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "sloth.slok.dev/v1", "kind": "AlertWindows",
                                   "spec": {"sloPeriod": "30d", "page": {"quick": {"errorBudgetPercent": 2,
                                                                                  "shortWindow": "1h",
                                                                                  "longWindow": "5m"}}}}))
    with pytest.raises(SpecError, match=r"w.yaml: document 1: spec.page.quick: shortWindow must be"):
        specs({"slos": [slo("a", "30d")], "slo_alert_windows": [str(bad)]})


def test_engine_evaluates_the_tiers_windows_of_a_custom_catalogue():
    s = specs({"slos": [slo("a", "30d")], "slo_alert_windows": [str(WINDOWS / "custom-30d.yaml")]})["a"]
    from slo.engine import SloEngine
    lengths = SloEngine.window_lengths(SimpleNamespace(specs=[s]), s)
    assert {"2m", "15m", "3h", "12h", "36h"} <= set(lengths)


def test_a_tier_that_can_never_fire():
    # explicit: refused, naming the field
    with pytest.raises(SpecError, match=r"slos: a: alerting.page\[0\]: burn rate 14.4 over 1h can never fire at "
                                        r"objective 0.9 \(it needs an error ratio of 1.44 > 1\)"):
        specs({"slos": [slo("a", "30d", 0.9, alerting={"page": [{"long": "1h", "short": "5m", "burn_rate": 14.4}]})]})
    # from the catalogue: left out with a warning the API shows; the other tiers stay
    (spec,) = specs({"slos": [slo("b", "30d", 0.9)]}).values()
    assert [t.burn_rate for t in spec.tiers] == [6.0, 3.0, 1.0]
    assert len(spec.warnings) == 1 and "page 1h/5m tier (burn rate 14.4" in spec.warnings[0]
    assert "can never fire at objective 0.9" in spec.warnings[0]
    # a tier whose long window is longer than the period is left out the same way
    (day,) = specs({"slos": [slo("d", "1d", 0.99)]}).values()
    assert [format(t.long.total_seconds(), "g") for t in day.tiers] == ["3600", "21600", "86400"]
    assert "longer than the SLO period 1d" in day.warnings[0]
    # explicit budget_percent pairs scale with the period too
    (e,) = specs({"slos": [slo("e", "28d", alerting={"page": [{"long": "1h", "short": "5m", "budget_percent": 2}],
                                                     "ticket": []})]}).values()
    assert [(t.severity, t.burn_rate) for t in e.tiers] == [("page", 13.44)]


@pytest.mark.parametrize("where,labels", [("labels", {"severity": "low"}), ("labels", {"slo": "x"}),
                                          ("alerting.page_alert.labels", {"severity": "x"}),
                                          ("alerting.labels", {"journey": "x"})])
def test_slo_labels_cannot_overwrite_builtin_alert_labels(where, labels):
    doc = slo("a", "30d")
    if where == "labels":
        doc["labels"] = labels
    elif where == "alerting.labels":
        doc["alerting"] = {"labels": labels}
    else:
        doc["alerting"] = {"page_alert": {"labels": labels}}
    with pytest.raises((SpecError, ValueError), match="is set by revwatch on every alert and cannot be overridden"):
        specs({"slos": [doc]})
