"""One state everywhere (issue #26): every SLO (and group) of a simulated business with faults shows the same state
and the same signed budget in the CLI (`slo status --json` and its table), the API, the web UI (overview and SLO
page), /metrics and the notifications' attribution — all of them read slo/state.py's one decision.

The decision itself is checked on its own (`decide`) against the rules written in its docstring, and the parity run
must reach several states (a business with faults, plus an SLO that measures nothing), so agreement is not
agreement on a single trivial value."""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from urllib.parse import unquote

import pytest
from rich.console import Console
from typer.testing import CliRunner

from revwatch.human import budget_phrase, num, units_phrase
from revwatch.sim.demo import DEMO_CONFIG
from revwatch.sim.faults import parse_fault
from revwatch.sim.model import Business
from slo.attribution import budget_of as attribution_budget
from slo.snapshot import Evaluation
from slo.state import LABELS, STATES, decide
from tests.support.sim_data import load
from tests.test_webui import sign_in

FLOAT_NOISE = re.compile(r"\d\.\d*(0000000|9999999)\d")         # 1.4000000000000001, 0.9999999999
NOW = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
CFG = DEMO_CONFIG.replace("evaluator:", """  - {name: nothing-measured, objective: 0.99, window: 7d,
     sli: {kind: span_ratio, service: no-such-service, bad_when: {StatusCode: Error}}}
evaluator:""")


@pytest.mark.parametrize("firing, ratio, no_data, state", [
    ((), 0.5, False, "ok"), (("ticket",), 0.5, False, "ticket"), (("page", "ticket"), -3.0, False, "page"),
    (("ticket",), 0.0, False, "exhausted"), ((), -8.01, False, "exhausted"), ((), 1.0, True, "no_data"),
    (("ticket",), 1.0, True, "ticket"), (("page",), 1.0, True, "page"), ((), None, False, "ok"),
    ((), -0.5, True, "exhausted"),              # a feed gone silent after overspending: the overspend shows
])
def test_the_decision(firing, ratio, no_data, state):
    assert decide(firing, ratio, no_data) == state


def test_people_read_budgets_and_numbers_without_float_noise():
    assert budget_phrase(0.531) == "53.1% left" and budget_phrase(0.0) == "exhausted"
    assert budget_phrase(-8.01) == "overspent by 801%" and budget_phrase(-0.042) == "overspent by 4.2%"
    assert units_phrase(-340.4, "events") == "340 events over budget"
    assert units_phrase(12, "minutes") == "12 minutes left"
    assert num(0.1 * 14) == "1.4" and num(5.6000000000000005) == "5.6" and num(14.4) == "14.4" and num(3.0) == "3"
    assert num(1e-05) == "1e-5" and num(0.999) == "0.999" and num(None) == "–"


@pytest.fixture
def business(api_factory):
    api = api_factory(CFG)
    start = NOW - dt.timedelta(hours=30)
    faults = [parse_fault(f, start, NOW) for f in (
        "posting_delay@-50m/50m:rate=0.6",          # ongoing: payment-posting pages
        "crm_sync_errors@-20h/3h:rate=0.5",         # yesterday: crm-sync budget overspent, nothing fires now
        "gateway_latency@-3h/2h:rate=0.3")]         # recent: gateway latency burns
    b = Business(11, start, 200, 90.0, faults)
    events, spans = b.advance(NOW)
    load(api.ctx.store, events, spans)
    at = NOW
    # what the evaluator would hold, at one fixed instant for every reader
    api.ctx.slo.snapshot.publish(Evaluation(at, tuple(api.ctx.slo.evaluate(at))))
    return api, at


def _key(name: str, group: str | None) -> tuple[str, str]:
    return name, group or ""


def test_every_reader_shows_the_one_state_and_budget(business, monkeypatch):
    api, at = business
    results = {(r.spec.name, r.group): r for r in api.ctx.slo.latest}
    truth = {k: (r.state, r.budget["remaining_ratio"]) for k, r in results.items()}
    states = {s for s, _ in truth.values()}
    assert {"ok", "no_data"} <= states and len(states & {"page", "ticket", "exhausted"}) >= 1, truth
    assert any(ratio < 0 for _, ratio in truth.values()), truth        # an overspent budget is in the run
    at_text = at.strftime("%Y-%m-%dT%H:%M:%SZ")

    # API
    api_docs = api.get(f"/api/v1/slos?at={at_text}").json()["slos"]
    assert {_key(d["name"], d["group"]): (d["state"], d["budget"]["remaining_ratio"]) for d in api_docs} == truth

    # CLI --json, through the command itself (reading the same store)
    from revwatch.cli.app import app as cli
    from revwatch.cli import slo as cli_slo
    from revwatch.cli.target import LocalTarget
    monkeypatch.setattr(cli_slo, "load_cli_config", lambda _: api.ctx.config)
    monkeypatch.setattr(cli_slo, "open_target", lambda cfg: LocalTarget(api.ctx.store, cfg))
    r = CliRunner().invoke(cli, ["slo", "status", "--json", "--at", at_text])
    assert r.exit_code == 0, r.output
    cli_docs = json.loads(r.stdout)["slos"]
    assert {_key(d["name"], d["group"]): (d["state"], d["budget"]["remaining_ratio"]) for d in cli_docs} == truth

    # CLI table: the state column and the budget phrase of every row
    from revwatch.report import slo_table
    buf = io.StringIO()
    Console(file=buf, width=400, color_system=None).print(slo_table(cli_docs))
    table = buf.getvalue()
    for (name, group), (state, ratio) in truth.items():
        label = name + (f" [{group}]" if group else "")
        row = next(line for line in table.splitlines() if re.search(rf"│ {re.escape(label)}\s+│", line))
        assert re.search(rf"│ {state}( \(\d+ min\))?( held: [^│]*)?\s*│$", row.rstrip()), row
        assert (budget_phrase(ratio) if state != "no_data" else "no data") in row, row

    # web UI: overview rows and every SLO page's sections
    sign_in(api)
    html = api.client.get("/ui/").text
    rows = re.findall(r'<tr class="st-(\w+)">\s*<td><span class="badge st-\w+">([^<]+)</span></td>\s*'
                      r'<td class="l"><a href="/ui/slos/([^"?]+)(?:\?group=([^"]*))?">', html)
    ui = {(unquote(n), unquote(g)): (st, label) for st, label, n, g in rows}
    assert {k: st for k, (st, _) in ui.items()} == {k: s for k, (s, _) in truth.items()}
    assert all(label == LABELS[st] for st, label in ui.values())
    counts = dict((label, int(n)) for n, label in re.findall(r"<li class=\"st-\w+\"><b>(\d+)</b> ([a-z ]+)</li>", html))
    assert counts.get("ticket", 0) == sum(s == "ticket" for s, _ in truth.values())
    assert counts.get("paging", 0) == sum(s == "page" for s, _ in truth.values())
    # open alerts grouped per SLO: one entry per firing SLO (and group), its conditions inside, its one state
    section = html.split("Open alerts")[1].split("Alert log")[0]
    firing = {k: [a for a in r.alerts if a["firing"]] for k, r in results.items()}
    entries = re.findall(r'<li class="st-(\w+)">\s*<span class="badge st-\w+">[^<]+</span>\s*'
                         r'<a href="/ui/slos/([^"?]+)(?:\?group=([^"]*))?">[^<]*</a>.*?· (\d+) conditions? firing',
                         section, re.S)
    assert {(unquote(n), unquote(g)): (st, int(c)) for st, n, g, c in entries} == \
        {k: (truth[k][0], len(f)) for k, f in firing.items() if f}
    assert any(firing.values())
    for name in {n for n, _ in truth}:
        page = api.client.get(f"/ui/slos/{name}").text
        shown = re.findall(r'<h2><span class="badge st-(\w+)">', page)
        expected = [truth[(name, g)][0] for (n, g) in sorted(truth) if n == name]
        assert sorted(shown) == sorted(expected), (name, shown, expected)
        for (n, g), (state, ratio) in truth.items():
            if n == name and state != "no_data":
                assert budget_phrase(ratio) in page, (name, g)
        assert not FLOAT_NOISE.search(page), FLOAT_NOISE.search(page)     # numbers for people (issue #26)
    assert not FLOAT_NOISE.search(html) and not FLOAT_NOISE.search(table)

    # /metrics: the one-hot state and the signed budget
    metrics = api.get("/metrics").text
    on = {(m[1], m[0]): m[2] for m in re.findall(
        r'^revwatch_slo_state\{group="([^"]*)",slo="([^"]*)",state="(\w+)"\} 1\.0$', metrics, re.M)}
    assert on == {k: s for k, (s, _) in truth.items()}
    assert len(re.findall(r"^revwatch_slo_state\{", metrics, re.M)) == len(truth) * len(STATES)
    budgets = {(m[1], m[0]): float(m[2]) for m in re.findall(
        r'^revwatch_slo_error_budget_remaining_ratio\{group="([^"]*)",slo="([^"]*)"\} (\S+)$', metrics, re.M)}
    assert budgets == pytest.approx({k: ratio for k, (_, ratio) in truth.items()})

    # notifications: the attribution every alert carries
    for k, res in results.items():
        b = attribution_budget(res)
        assert b["state"] == truth[k][0] and b["summary"] == budget_phrase(truth[k][1])


def test_overview_stuck_count_and_money_are_the_evaluators_as_metrics_shows(business):
    """The overview's "Stuck right now" shows the evaluator's latest stuck summaries — the numbers /metrics exposes
    — not a read of its own taken at another moment (which would count an instance gone overdue in between)."""
    import dataclasses

    from tests.support.slo_data import journey
    api, at = business
    ctx = api.ctx
    passed = ctx.journeys.reader.summaries(at)
    assert any(s.stuck for s in passed) and any(s.money for s in passed)
    ctx.slo.snapshot.publish(dataclasses.replace(ctx.slo.snapshot.current, stuck=passed, summaries_at=at,
                                                 from_evaluator=True))
    # after the pass, one more settled payment is overdue: a read of its own would show it, the pass does not yet
    journey(ctx.store, "pay-after-the-pass", at - dt.timedelta(hours=2))
    later = {s.name: s.stuck for s in ctx.journeys.reader.summaries(at)}
    assert later != {s.name: s.stuck for s in passed}

    sign_in(api)
    html = api.client.get("/ui/").text.split("Stuck right now")[1].split("</table>")[0]
    shown = {name: int(n) for name, n in re.findall(
        r'<tr><td class="l"><a href="/ui/stuck\?journey=[^"]+">([^<]+)</a>.*?<td class="[^"]*">'
        r'<a href="/ui/stuck\?journey=[^"]+">(\d+)</a>', html, re.S)}
    metrics = api.get("/metrics").text
    exposed = {j: int(float(v)) for j, v in re.findall(r'^revwatch_journey_stuck\{journey="([^"]+)"\} (\S+)$',
                                                       metrics, re.M)}
    assert shown == exposed == {s.name: s.stuck for s in passed}
    money = {(cur, j): float(v) for cur, j, v in re.findall(
        r'^revwatch_journey_stuck_amount\{currency="([^"]+)",journey="([^"]+)"\} (\S+)$', metrics, re.M)}
    assert money == {(c, s.name): float(a) for s in passed for c, a in s.money.items()}
    assert at.strftime("%H:%M:%S") in api.client.get("/ui/").text.split("Stuck right now")[1][:200]
