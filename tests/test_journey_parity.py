"""One truth for journeys: every reader — the lookup service, `GET /api/v1/journeys/{id}`, the stuck list
(`?stuck=`), the CLI's JSON (`revwatch trace --json`, `revwatch journeys search --stuck --json`), the web UI (raw
journey JSON, stuck CSV, overview summary) — gives every instance of a generated business the same status and
the same money to the cent, and both match a hand count from the generator's own events (the second source).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from revwatch.cli import journeys as cli_journeys
from revwatch.cli import trace as cli_trace
from revwatch.cli.app import app as cli_app
from revwatch.cli.target import LocalTarget
from revwatch.journeys import Policy, StuckInstance
from revwatch.sim.faults import parse_fault
from revwatch.sim.model import Business
from tests.support.sim_data import load

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
START, END = NOW - dt.timedelta(hours=30), NOW - dt.timedelta(minutes=40)
JOURNEYS = {"payment_to_posting": ("payment.settled", "payment.posted", dt.timedelta(minutes=15)),
            "renewal_to_invoice": ("subscription.renewed", "invoice.posted", dt.timedelta(hours=6))}
CFG = """
journeys:
  payment_to_posting: {start: payment.settled, end: payment.posted}
  renewal_to_invoice: {start: subscription.renewed, end: invoice.posted, milestones: [invoice.created],
                       threshold: 6h}
slos:
  - {name: pp, journey: payment_to_posting, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
"""


def _at(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def hand_count(events: list[dict]) -> dict[tuple[str, str], dict]:
    """(journey, cid) → first start, first end, start amount/currency — straight from the generated events."""
    out: dict[tuple[str, str], dict] = {}
    for e in events:
        for name, (start, end, _) in JOURNEYS.items():
            if e["type"] not in (start, end):
                continue
            d = out.setdefault((name, e["correlation_id"]), {"start": None, "end": None, "amount": None, "cur": ""})
            at = _at(e["occurred_at"])
            key = "start" if e["type"] == start else "end"
            if d[key] is None or at < d[key]:
                d[key] = at
                if key == "start" and "amount" in e:
                    d["amount"], d["cur"] = Decimal(e["amount"]), e["currency"]
    return out


def hand_status(d: dict, threshold: dt.timedelta, now: dt.datetime) -> str:
    if d["start"] is None:
        return "not_started"
    if d["end"] is not None:
        return "completed"
    return "overdue" if now - d["start"] > threshold else "in_progress"


@pytest.fixture(scope="module")
def business():
    faults = [parse_fault(f, START, END) for f in ("posting_delay@day1+10h/3h", "webhook_loss@day1+14h/6h",
                                                   "queue_backlog@-4h/4h")]
    b = Business(5, START, customers=60, rate_per_hour=4, faults=faults)
    events, spans = b.advance(END)
    return events, spans


def test_every_reader_agrees_on_status_and_money(api_factory, business, monkeypatch):
    events, spans = business
    api = api_factory(CFG)
    load(api.ctx.store, events, spans)
    truth = hand_count(events)
    runner = CliRunner()
    target = LocalTarget(api.ctx.store, api.ctx.config)
    monkeypatch.setattr(cli_journeys, "open_target", lambda cfg: target)
    monkeypatch.setattr(cli_trace, "open_target", lambda cfg: target)
    monkeypatch.setattr(cli_journeys, "load_cli_config", lambda path: api.ctx.config)
    monkeypatch.setattr(cli_trace, "load_cli_config", lambda path: api.ctx.config)
    r = api.client.post("/ui/login", data={"key": api.keys["read"], "next": "/ui"}, follow_redirects=False)
    assert r.status_code == 303

    t0 = dt.datetime.now(dt.timezone.utc)
    stuck_api, stuck_cli, stuck_ui, stuck_svc = {}, {}, {}, {}
    for name in JOURNEYS:
        items = api.get("/api/v1/journeys", params={"stuck": name, "limit": 1000}).json()["items"]
        stuck_api[name] = {i["correlation_id"]: (i["status"], i["amount"], i["currency"]) for i in items}
        res = runner.invoke(cli_app, ["journeys", "search", "--stuck", name, "--limit", "1000", "--json"])
        assert res.exit_code == 0, res.output
        stuck_cli[name] = {i["correlation_id"]: (i["status"], i["amount"], i["currency"])
                           for i in json.loads(res.stdout)["items"]}
        rows = csv.DictReader(io.StringIO(api.client.get(f"/ui/stuck.csv?journey={name}").text))
        stuck_ui[name] = {x["correlation_id"]: ("overdue", x["amount"] or None, x["currency"]) for x in rows}
        svc: list[StuckInstance] = api.ctx.journeys.stuck(name, limit=1000)
        stuck_svc[name] = {s.correlation_id: (s.status, s.amount, s.currency) for s in svc}
    summaries = {s.name: s for s in api.ctx.journeys.reader.summaries()}
    per_instance: dict[tuple[str, str], list] = {}
    for (name, cid), d in truth.items():
        if d["start"] is None:
            continue
        docs = [api.ctx.journeys.lookup(cid), api.get(f"/api/v1/journeys/{cid}").json(),
                api.client.get(f"/ui/journeys/{cid}?format=json").json()]
        res = runner.invoke(cli_app, ["trace", cid, "--json"])
        assert res.exit_code == 0, res.output
        docs.append(json.loads(res.stdout))
        per_instance[(name, cid)] = [next(j for j in doc["journeys"] if j["journey"] == name) for doc in docs]
    t1 = dt.datetime.now(dt.timezone.utc)

    checked = {"overdue": 0, "in_progress": 0, "completed": 0}
    ambiguous = 0
    for (name, cid), views in per_instance.items():
        d = truth[(name, cid)]
        threshold = JOURNEYS[name][2]
        if d["end"] is None and t0 - dt.timedelta(seconds=2) <= d["start"] + threshold <= t1 + dt.timedelta(seconds=2):
            ambiguous += 1                      # its status changed while the readers were being asked
            continue
        want = hand_status(d, threshold, t0)
        for v in views:
            assert v["status"] == want, (name, cid, v["status"], want)
            got = None if v["amount"] is None else Decimal(v["amount"])
            assert got == d["amount"] and (got is None or v["currency"] == d["cur"]), (name, cid, v, d)
        for listing in (stuck_api, stuck_cli, stuck_ui):
            row = listing[name].get(cid)
            assert (row is not None) == (want == "overdue"), (name, cid, want)
            if row:
                assert row[0] == "overdue"
                assert (Decimal(row[1]) if row[1] else None) == d["amount"] and (row[1] is None or row[2] == d["cur"])
        assert (cid in stuck_svc[name]) == (want == "overdue")
        checked[want] += 1
    assert ambiguous <= 3 and all(n >= 3 for n in checked.values()), checked
    for name in JOURNEYS:                       # nothing listed that the lookup does not call overdue
        assert set(stuck_api[name]) == set(stuck_cli[name]) == set(stuck_ui[name]) == set(stuck_svc[name])
        overdue = [d for (n, _), d in truth.items() if n == name and d["start"] and d["end"] is None
                   and t0 - d["start"] > JOURNEYS[name][2]]
        hand_money: dict[str, Decimal] = {}
        for d in overdue:
            if d["amount"] is not None:
                hand_money[d["cur"]] = hand_money.get(d["cur"], Decimal(0)) + d["amount"]
        s = summaries[name]
        assert s.stuck == len(overdue) == len(stuck_api[name]) and s.money == hand_money, (name, s, hand_money)
        assert sum(s.buckets.values()) == s.stuck


def test_policy_one_rule_for_every_status():
    p = Policy({"p": dt.timedelta(minutes=15)})
    now = NOW
    assert p.status("p", None, now, now) == "not_started"
    assert p.status("p", now - dt.timedelta(hours=1), now, now) == "completed"
    assert p.status("p", now - dt.timedelta(minutes=15), None, now) == "in_progress"    # at the threshold: not yet
    assert p.status("p", now - dt.timedelta(minutes=15, milliseconds=1), None, now) == "overdue"
    assert p.status("p", now - dt.timedelta(days=7, seconds=1), None, now) == "expired"
    assert p.threshold("other") == dt.timedelta(hours=1)                                # the one default
