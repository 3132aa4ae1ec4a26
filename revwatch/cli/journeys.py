"""`revwatch journeys search`: the API's `GET /api/v1/journeys` from the shell (from the store, or through the
server that holds it).

Options are validated before the store is opened, so bad usage is one line and exit 2 even while the store is
down.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from revwatch.cli.app import app, at_param, fail, load_cli_config, out
from revwatch.cli.target import JourneyQuery, open_target

journeys_app = typer.Typer(help="Find journeys by attribute, customer, journey type or time; list stuck ones.",
                           no_args_is_help=True)
app.add_typer(journeys_app, name="journeys")


@journeys_app.command("search")
def journeys_search(attr: Optional[str] = typer.Option(None, "--attr",
                                                       help="KEY:VALUE, e.g. invoice_ref:INV/2026/00042"),
                    customer: Optional[str] = typer.Option(None, "--customer", help="customer_id attribute"),
                    journey: Optional[str] = typer.Option(None, "--journey", help="a configured journey"),
                    since: Optional[str] = typer.Option(None, "--since", help="RFC 3339 instant"),
                    until: Optional[str] = typer.Option(None, "--until", help="RFC 3339 instant"),
                    stuck: Optional[str] = typer.Option(None, "--stuck", metavar="JOURNEY",
                                                        help="list instances of JOURNEY past its threshold"),
                    limit: int = typer.Option(100, "--limit", min=1, max=1000),
                    config: Optional[Path] = typer.Option(None, "--config", "-c", help="config YAML (default: "
                                                          "$REVWATCH_CONFIG, else ./revwatch.yaml)"),
                    as_json: bool = typer.Option(False, "--json", help="stable JSON output for scripts")):
    """Correlation IDs matching the filters, newest first (no filter: the last day), or with --stuck the
    instances of a journey past its threshold, oldest first."""
    pair = None
    if attr is not None:
        key, sep, value = attr.partition(":")
        if not (sep and key and value):
            fail("--attr must be KEY:VALUE, e.g. invoice_ref:INV/2026/00042")
        pair = (key, value)
    lo, hi = at_param(since, "--since"), at_param(until, "--until")
    if stuck is None and not any((pair, customer, journey, lo, hi)):     # as the API: the last day, newest first
        import datetime as dt
        from revwatch.units import utcnow
        lo = utcnow() - dt.timedelta(days=1)
    cfg = load_cli_config(config)
    for opt, name in (("--journey", journey), ("--stuck", stuck)):
        if name is not None and name not in cfg.journeys:
            fail(f"{opt}: unknown journey {name!r} (configured: {', '.join(cfg.journeys) or 'none'})")
    items = open_target(cfg).journeys_search(JourneyQuery(pair, customer, journey, since, until, lo, hi, stuck, limit))
    if as_json:
        print(json.dumps({"items": items}, default=str))
        return
    if not items:
        out.print("no matching journeys", markup=False)
        return
    if stuck:
        out.print(f"{'CORRELATION ID':24}  {'STARTED (UTC)':24}  {'OVERDUE':>10}  WAITING FOR", markup=False)
        for it in items:
            out.print(f"{it['correlation_id']:24}  {it['started']:24}  {_minutes(it['overdue_seconds']):>10}  "
                      f"{it['waiting_for']}", markup=False, highlight=False)
        return
    out.print(f"{'CORRELATION ID':24}  {'LAST SEEN (UTC)':24}  {'EVENTS':>6}  SYSTEMS / TYPES", markup=False)
    for it in items:
        out.print(f"{it['correlation_id']:24}  {it['last_seen']:24}  {it['events']:>6}  "
                  f"{','.join(it['systems'])} / {','.join(it['types'])}", markup=False, highlight=False)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@journeys_app.command("funnel")
def journeys_funnel(journey: str = typer.Argument(..., help="a configured journey"),
                    since: Optional[str] = typer.Option(None, "--since", help="RFC 3339 instant (default: 7 days "
                                                        "before --until)"),
                    until: Optional[str] = typer.Option(None, "--until", help="RFC 3339 instant (default: now)"),
                    attr: list[str] = typer.Option([], "--attr", help="KEY:VALUE filter on the start event "
                                                   "(repeatable; source:NAME filters the source system)"),
                    by: Optional[str] = typer.Option(None, "--by", help="one funnel per value of this attribute"),
                    config: Optional[Path] = typer.Option(None, "--config", "-c", help="config YAML (default: "
                                                          "$REVWATCH_CONFIG, else ./revwatch.yaml)"),
                    as_json: bool = typer.Option(False, "--json", help="stable JSON output for scripts")):
    """Count and money reaching each step of a journey, conversion, drop-off, step latency and where money
    waits (the API's GET /api/v1/funnels/{journey})."""
    import datetime as dt

    from revwatch.units import utcnow
    filters: dict[str, str] = {}
    for a in attr:
        key, sep, value = a.partition(":")
        if not (sep and key and value):
            fail("--attr must be KEY:VALUE, e.g. gateway:stripe")
        filters[key] = value
    hi = at_param(until, "--until") or utcnow()
    lo = at_param(since, "--since") or hi - dt.timedelta(days=7)
    if lo >= hi:
        fail("--since must be before --until")
    if hi - lo > dt.timedelta(days=93):
        fail("--since: at most 93 days per funnel")
    cfg = load_cli_config(config)
    if journey not in cfg.journeys:
        fail(f"unknown journey {journey!r} (configured: {', '.join(cfg.journeys) or 'none'})")
    funnels = open_target(cfg).funnel(journey, lo, hi, filters, by)
    if as_json:
        print(json.dumps({"journey": journey, "funnels": funnels}, default=str))
        return
    for f in funnels:
        split = f" [{by}={f['group']}]" if f.get("group") is not None else ""
        head = f"{journey}{split}: {f['started']} started, {f['completed']} completed"
        out.print(head, markup=False, highlight=False)
        out.print(f"  {'STEP':28} {'REACHED':>8} {'CONV':>7} {'P50':>9}  {'WAITING':>7}  MONEY", markup=False)
        for i, s in enumerate(f["steps"]):
            conv = "" if i == 0 or s["conversion"] is None else f"{s['conversion'] * 100:.1f}%"
            p50 = _minutes(s["latency_seconds"]["p50"]) if s["latency_seconds"] else ""
            money = " + ".join(f"{v} {c}" for c, v in s["money"].items())
            out.print(f"  {s['step']:28} {s['reached']:>8} {conv:>7} {p50:>9}  {s['stopped'] or '':>7}  {money}",
                      markup=False, highlight=False)
