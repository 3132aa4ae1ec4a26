"""The SLO page as people know it from Grafana SLO / Pyrra / Nobl9 (issue #26): a time-range picker (presets and a
custom from/to kept in the URL), range views that say what they compute and never contradict the window budget,
values on hover, the SLI axis zoomed around the objective, the previous period, budget history, ownership, and the
overview's SLO search."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from revwatch.human import budget_phrase
from tests.test_webui import CFG, NOW, seed_payments, sign_in
from webui import data

OWNED = CFG.replace("alerting: {min_events: 1000}}",
                    'alerting: {min_events: 1000}, team: payments-ops, owner: ana@example.com, '
                    'runbook: "https://wiki.example.com/rb/pp"}')


@pytest.fixture
def ui(api_factory):
    api = api_factory(OWNED)
    seed_payments(api.ctx.store)
    api.ctx.slo.evaluate_and_cache()
    sign_in(api)
    return api


def _last(values):
    return next(v for v in reversed(values) if v is not None)


@pytest.mark.parametrize("span", ["1h", "6h", "24h", "7d", "30d", "window"])
def test_every_range_ends_on_the_window_budget_of_the_header(ui, span):
    d = data.slo_detail(ui.ctx, "pp", None, span)
    (g,) = d["groups"]
    header = g["result"]["budget"]["remaining_ratio"]
    assert header < -1                                           # overspent far beyond -100 %: nothing clips it
    assert _last(g["burn_down"]) == pytest.approx(header)         # the chart ends on the header's number
    assert g["burn_down_min"] <= header
    page = ui.client.get(f"/ui/slos/pp?range={span}").text
    assert page.count(budget_phrase(header)) >= 1 and "its last point is the number above" in page
    assert "clipped" not in page.split("Error budget of the")[1].split("</figcaption>")[0].replace("not clipped", "")


def test_custom_range_is_kept_in_the_url_and_checked(ui):
    frm = (NOW - dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")
    to = (NOW - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    r = ui.client.get(f"/ui/slos/pp?range=custom&from={frm}&to={to}")
    assert r.status_code == 200
    assert f'name="from" required value="{frm}"' in r.text and f'name="to" value="{to}"' in r.text
    d = data.slo_detail(ui.ctx, "pp", None, "custom", dt.datetime.fromisoformat(frm + "+00:00"),
                        dt.datetime.fromisoformat(to + "+00:00"))
    (g,) = d["groups"]
    assert d["at"] == dt.datetime.fromisoformat(to + "+00:00")   # the header is the SLO as of the range's end
    assert _last(g["burn_down"]) == pytest.approx(g["result"]["budget"]["remaining_ratio"])
    for bad, field in ((f"from={to}&to={frm}", "from"), ("from=yesterday", "from"), ("range=2w", "range"),
                       ("range=custom", "from")):
        r = ui.client.get(f"/ui/slos/pp?{bad}")
        assert r.status_code == 400 and r.json()["field"] == field, bad


def test_hover_values_zoomed_sli_axis_previous_period_and_history(ui):
    page = ui.client.get("/ui/slos/pp?range=7d").text
    titles = re.findall(r'<circle class="pt s0"[^>]*><title>([^<]+)</title>', page)
    assert titles and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC · ", t) for t in titles)
    assert any("SLI: " in t for t in titles) and any("budget left: " in t for t in titles)
    d = data.slo_detail(ui.ctx, "pp", None, "7d")
    (g,) = d["groups"]
    assert g["sli_axis"][1] == 1.0 and g["sli_axis"][0] >= 0
    assert d["previous"][1] == d["window"][0] and "previous period" in page
    assert set(g["range_totals"]) == {"range", "previous"} and g["range_totals"]["range"]["total"] == 5
    hist = data.budget_history(ui.ctx, ui.ctx.slo.spec("pp"), d["at"], None)
    assert len(hist) == data.HISTORY_PERIODS and hist[0]["state"] == g["status"]
    assert hist[0]["remaining_ratio"] == pytest.approx(g["result"]["budget"]["remaining_ratio"])
    assert all(a["from"] > b["from"] for a, b in zip(hist, hist[1:]))        # newest first, back to back
    assert all(a["from"] - b["from"] == dt.timedelta(days=7) for a, b in zip(hist, hist[1:]))
    assert hist[-1]["state"] == "no_data" and "Budget history" in page
    text = ui.client.get("/ui/slos/pp/history").text
    assert text.count('<span class="badge st-') == data.HISTORY_PERIODS
    assert budget_phrase(hist[0]["remaining_ratio"]) in text
    assert ui.client.get("/ui/slos/nope/history").status_code == 404


def test_zoomed_axis_stays_around_the_objective():
    lo, hi = data._zoomed_sli_axis([0.999, 0.998, None], 0.99)
    assert hi == 1.0 and 0.9 < lo < 0.99                     # five budgets below the objective, not 0 %
    assert data._zoomed_sli_axis([0.2], 0.99)[0] < 0.2        # a real dip is never cut off


def test_ownership_and_search(ui):
    page = ui.client.get("/ui/slos/pp").text
    assert "payments-ops" in page and "ana@example.com" in page and 'href="https://wiki.example.com/rb/pp"' in page
    html = ui.client.get("/ui/?q=payments-ops").text
    assert 'href="/ui/slos/pp"' in html and 'href="/ui/slos/api"' not in html and "1 of 2" in html
    html = ui.client.get("/ui/?q=API").text
    assert 'href="/ui/slos/api"' in html and 'href="/ui/slos/pp"' not in html
    assert "team payments-ops" in ui.client.get("/ui/").text


SLICED = """
slos:
  - {name: ts5, objective: 0.9, window: 1d, budgeting: timeslices, timeslice_window: 5m, timeslice_target: 0.95,
     sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
  - {name: tsr, objective: 0.9, window: 1d, budgeting: ratio_timeslices,
     sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
"""


def _sliced_traffic(store) -> None:
    """Two hours of spans, 20 a minute, ending now; four minutes at 50 % errors, 30 minutes apart (each makes its
    5-minute slice 10 % bad: under the 95 % slice target), and a few single errors (5 % of a minute, 1 % of a
    5-minute slice: good slices for ts5, small bad ratios for tsr)."""
    from tests.support.slo_data import add_span_list
    end = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    spans = []
    for m in range(120):
        minute = end - dt.timedelta(minutes=120 - m)
        errors = 10 if m % 30 == 10 else 1 if m % 17 == 3 else 0
        spans += [(int((minute + dt.timedelta(seconds=3 * k)).timestamp() * 1e9), k < errors) for k in range(20)]
    add_span_list(store, spans)


@pytest.mark.parametrize("span", ["6h", "window"])
def test_time_slice_budget_chart_counts_bad_slices_and_ends_on_the_header(api_factory, span):
    """A time-slice budget is in slices: the burn-down sums bad slices from the one budget function
    (slo.state.budget_of) and ends on the header's number; over the whole window it starts with the budget whole,
    which holds only when the chart's bad slices are the engine's."""
    api = api_factory(SLICED)
    _sliced_traffic(api.ctx.store)
    api.ctx.slo.evaluate_and_cache()
    sign_in(api)
    for name in ("ts5", "tsr"):
        d = data.slo_detail(api.ctx, name, None, span)
        (g,) = d["groups"]
        budget = g["result"]["budget"]
        assert budget["unit"] == "minutes" and 0 < budget["bad"] and budget["remaining_ratio"] < 1
        drawn = [v for v in g["burn_down"] if v is not None]
        assert drawn and drawn[-1] == pytest.approx(budget["remaining_ratio"])     # one truth: the header's number
        assert drawn[0] == pytest.approx(1.0)                   # nothing spent before the traffic began
        assert len(set(round(v, 9) for v in drawn)) > 2         # it burns down in steps, slice by slice
        page = api.client.get(f"/ui/slos/{name}?range={span}").text
        chart = page.split("Error budget of the")[1].split("</figure>")[0]
        assert "counted in bad time slices" in chart and "<svg" in chart
        assert budget_phrase(budget["remaining_ratio"]) in page
    # counted by hand: four bad 5-minute slices (the single errors leave theirs good); for the 1-minute ratio
    # slices, 0.5 per 50 % minute and 0.05 per single error (minutes 3, 20, 37, 54, 71, 88, 105)
    budgets = {n: data.slo_detail(api.ctx, n, None, "window")["groups"][0]["result"]["budget"] for n in ("ts5", "tsr")}
    assert budgets["ts5"]["bad"] == 4 and budgets["tsr"]["bad"] == pytest.approx(4 * 0.5 + 7 * 0.05)
