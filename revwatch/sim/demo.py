"""`revwatch demo`: the whole product on the embedded store, with a simulated business and a few faults.

Starts the server in this process, backfills a few days (progress shown), prints the SLO table with burn rates,
the open alerts, one faulted journey as `revwatch trace` shows it, and where to look; then keeps a live trickle
going until Ctrl-C.
"""
from __future__ import annotations

import datetime as dt
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from anomaly.detectors import scan as anomaly_scan
from revwatch.config import Config
from revwatch.report import journey_timeline, slo_table
from revwatch.server import create_app
from revwatch.sim.run import SimParams, TruthWriter, backfill, build, live
from revwatch.sim.sender import Sender

DEMO_CONFIG = """
journeys:
  payment_to_posting: {start: payment.settled, end: payment.posted, milestones: []}
  renewal_to_invoice: {start: subscription.renewed, end: invoice.posted, milestones: [invoice.created]}
  payment_to_reconciliation: {start: payment.posted, end: payment.reconciled}
slos:
  - {name: payment-posting-15m, journey: payment_to_posting, objective: 0.995, window: 7d,
     sli: {kind: journey_latency, threshold: 15m}, alerting: {min_events: 5},
     description: "99.5 % of settled payments are posted in Odoo within 15 minutes"}
  - {name: renewal-invoiced-1h, journey: renewal_to_invoice, objective: 0.99, window: 7d,
     sli: {kind: journey_latency, threshold: 1h}, alerting: {min_events: 5}}
  - {name: payment-reconciled-1h, journey: payment_to_reconciliation, objective: 0.93, window: 7d,
     sli: {kind: journey_completion, max_age: 1h}, group_by: [gateway],
     description: "93 % of posted payments are matched to their invoice in Odoo within the hour; the rest wait
       for an accountant (customers who type their own reference, payments without one, short or paid twice)"}
  - {name: gateway-latency-2s, objective: 0.99, window: 7d, group_by: [service],
     sli: {kind: span_latency, span_name: "POST /v1/charges", threshold: 2s}}
  - {name: crm-sync-errors, objective: 0.995, window: 7d,
     sli: {kind: span_ratio, service: crm-sync, bad_when: {StatusCode: Error}}}
  - {name: odoo-api-errors, objective: 0.999, window: 7d,
     sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
evaluator: {interval: 15s}
"""
DEMO_DAYS = 7.0           # = the SLO windows: every budget is measured over a full window of history
DEMO_RATE = 30.0          # business transactions per hour
DEMO_SEED = 7
DEMO_CUSTOMERS = 400


@dataclass(frozen=True)
class Incident:
    """A fault the demo injects on purpose, announced before it is shown."""
    fault: str            # revwatch.sim.faults spec, relative to the end of the backfill
    slo: str              # the SLO it burns
    story: str


# A healthy business (its baseline meets every objective) with two incidents: one resolved yesterday, one
# going on now. Everything else the SLO table shows is the baseline.
INCIDENTS = [
    Incident("gateway_latency@-30h/1h:rate=0.5", "gateway-latency-2s",
             "resolved, yesterday: for one hour the payment gateway answered half of the charges in ~6 s"),
    Incident("posting_delay@-45m/45m:rate=0.5", "payment-posting-15m",
             "ongoing, since 45 minutes: Odoo's posting queue is backed up; half of the settled payments wait "
             "30-120 minutes to be posted"),
]
# Faults no SLO measures, for the anomaly detectors: invoices that bill the wrong amount, and payments that will
# not reconcile (no reference, short, paid twice). The payment breakers run as an incident in the last 40 minutes:
# their payments still open at the end (outcome not in yet) are scored, and those the model finds likely to fail
# are the reconciliation findings of the anomalies page.
ANOMALY_FAULTS = [
    ("price_misconfig@-2d/2d:rate=0.03", "an old price list on 3 % of the invoices of the last two days"),
    ("tax_missing@-1d/1d:rate=0.03", "the customer's tax left off 3 % of yesterday's invoices"),
    ("double_charge@-1d/1d:rate=0.02", "2 % of yesterday's renewals invoiced twice"),
    ("recon_missing_ref@-40m/40m:rate=0.3", "payments without an invoice reference in the last 40 minutes"),
    ("recon_partial@-40m/40m:rate=0.2", "short payments in the last 40 minutes"),
    ("recon_duplicate@-40m/40m:rate=0.1", "invoices paid twice in the last 40 minutes"),
]
# The same breakers as everyday life before that: a real business's history holds a few payments a day without a
# reference, short or paid twice, most of which then fail to reconcile (revwatch.sim.model's failure
# probabilities). The risk model learns from that history and its outcomes what such payments look like — as in a
# deployment, where it trains on the business's own past — so the incident's breakers score as likely to fail.
# Without them the history never shows a breaker, and the model cannot tell one from a healthy payment (it scored
# the incident's breakers 0.01-0.02). Rates are shares of payments (about 0.9 % together); with the customers who
# type their own references they set the business's reconciliation baseline, ~95 %, which the
# payment-reconciled-1h objective (93 %) is set under, as a deployment sets objectives its normal days meet.
BACKGROUND_BREAKERS = {"recon_missing_ref": 0.004, "recon_partial": 0.003, "recon_duplicate": 0.002}
BACKGROUND_STORY = ("and, all week, the everyday share of such payments "
                    f"({sum(BACKGROUND_BREAKERS.values()):.1%} of them) that the risk model learns from")


def demo_faults(days: float) -> list[str]:
    """Every fault spec of a demo backfilling `days`: the incidents, the anomaly faults and the everyday breakers
    over the whole history up to the last 40 minutes (where the breaker incident takes over)."""
    whole = round(days * 1440)
    history = [f"{name}@-{whole}m/{max(1, whole - 40)}m:rate={rate:g}" for name, rate in BACKGROUND_BREAKERS.items()]
    return [i.fault for i in INCIDENTS] + [f for f, _ in ANOMALY_FAULTS] + history


DEMO_FAULTS = demo_faults(DEMO_DAYS)


def demo_params(days: float = DEMO_DAYS, seed: int = DEMO_SEED, rate: float = DEMO_RATE, truth: str | None = None,
                end: dt.datetime | None = None) -> SimParams:
    """The simulated business of the demo: its customers, rate and every fault (tests/test_demo_findings.py)."""
    return SimParams(seed=seed, days=days, customers=DEMO_CUSTOMERS, rate=rate, faults=demo_faults(days),
                     truth=truth, end=end)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(data_dir: Path, port: int = 8317, days: float = DEMO_DAYS, seed: int = DEMO_SEED, rate: float = DEMO_RATE,
             keep_running: bool = True, console: Console | None = None) -> dict:
    """Run the demo; returns a summary (used by tests) once the backfill is shown."""
    con = console or Console()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    if not _port_free("127.0.0.1", port):
        port = _free_port()
    raw = yaml.safe_load(DEMO_CONFIG)
    raw.update(data_dir=str(data_dir), server={"host": "127.0.0.1", "port": port})
    (data_dir / "revwatch.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = Config.model_validate(raw)
    con.print(f"[bold]revwatch demo[/bold] — embedded store in {data_dir}/data, server on http://127.0.0.1:{port}")
    con.print(f"A healthy subscription business: {days:g} simulated days (the SLO windows are 7 days), "
              f"~{rate:g} transactions an hour. Two incidents are injected:")
    for n, inc in enumerate(INCIDENTS, 1):
        con.print(f"  [bold]incident {n}[/bold] ({inc.slo}): {inc.story}", highlight=False)
    con.print("and, for the anomaly detectors (no SLO measures these): "
              + "; ".join(story for _, story in ANOMALY_FAULTS) + "; " + BACKGROUND_STORY, highlight=False)
    app = create_app(cfg)
    ctx = app.state.ctx
    read_key, _ = ctx.keys.create("read", "demo")
    ingest_key, _ = ctx.keys.create("ingest", "demo simulator")
    admin_key, _ = ctx.keys.create("admin", "demo")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"

    params = demo_params(days, seed, rate, truth=str(data_dir / "sim-truth.jsonl"))
    business, faults, start, end = build(params)
    sender = Sender(base, ingest_key, seed=seed)
    truth = TruthWriter(params.truth, business)
    t0 = time.monotonic()
    with Progress(TextColumn("backfilling {task.fields[days]:.0f} simulated days"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%  {task.fields[ev]} events, {task.fields[sp]} spans"),
                  TimeElapsedColumn(), console=con, transient=False) as prog:
        task = prog.add_task("backfill", total=1.0, days=days, ev=0, sp=0)
        backfill(business, sender, start, end, truth,
                 progress=lambda frac, ev, sp: prog.update(task, completed=frac, ev=ev, sp=sp))
    ctx.writer.wait_drained(120)
    results = ctx.slo.evaluate_and_cache()
    docs = [r.as_dict() for r in results]
    con.print(f"backfill done in {time.monotonic() - t0:.0f} s: {sender.sent_events} events "
              f"({sender.duplicates} duplicate deliveries recognised), {sender.sent_spans} spans; "
              f"{len(business.truth)} transactions hit by the incidents")
    con.print(slo_table(docs))
    hit = {i.slo for i in INCIDENTS}
    healthy = [d for d in docs if d["name"] not in hit]
    meeting = sum(1 for d in healthy if d["sli"] is None or d["sli"] >= d["objective"])
    con.print(f"baseline: {meeting} of {len(healthy)} SLO series untouched by the incidents meet their objective; "
              f"the incidents burned budget on {', '.join(sorted(hit))}", highlight=False)
    firing = [(d["name"], d.get("group"), a) for d in docs for a in d["alerts"] if a["firing"]]
    con.print("[bold]open alerts[/bold] (multi-window burn rate):" if firing else "[bold]open alerts:[/bold] none")
    for name, group, a in firing:
        con.print(f"  [{'red' if a['severity'] == 'page' else 'yellow'}]{a['severity'].upper()}[/] {name}"
                  f"{escape(f' [{group}]') if group else ''}: burn {a['long_burn_rate']:.1f} over {a['long']} and "
                  f"{a['short_burn_rate']:.1f} over {a['short']} (threshold {a['threshold']:g})")
    found = anomaly_scan(ctx.store, risk_threshold=cfg.anomaly.risk_threshold)["findings"]
    con.print(f"[bold]anomalies[/bold]: {found.get('billing_variance', 0)} invoices billing the wrong amount, "
              f"{found.get('reconciliation_risk', 0)} open payments likely to fail reconciliation "
              f"({base}/ui/anomalies)", highlight=False)
    # the payment that has waited longest for its posting because of incident 2: an overdue journey
    stuck = ctx.journeys.stuck("payment_to_posting", limit=5)
    delayed = {t["correlation_id"] for t in business.truth if t["fault"] == "posting_delay"}
    example = next((s.correlation_id for s in stuck if s.correlation_id in delayed), None)
    if example is None and business.truth:
        example = business.truth[-1]["correlation_id"]
    if example:
        con.print(f"\n[bold]example:[/bold] revwatch trace {example}   (a payment hit by incident 2, the posting "
                  f"backlog)")
        try:
            con.print(journey_timeline(ctx.journeys.lookup(example)))
        except Exception as e:                      # still being delivered: say so rather than fail the demo
            con.print(f"  (not yet visible: {e})")
    if stuck:
        con.print("[bold]stuck payments[/bold] (settled, not posted, past 15 min): " +
                  ", ".join(s.correlation_id for s in stuck))
    con.print(where_to_look(base, data_dir / "revwatch.yaml", read_key, ingest_key, admin_key, example,
                            params.truth or ""), highlight=False, soft_wrap=True)   # set above
    summary = {"base": base, "slos": docs, "example": example, "events": sender.sent_events,
               "spans": sender.sent_spans, "keys": {"read": read_key, "admin": admin_key, "ingest": ingest_key}}
    if not keep_running:
        sender.close()
        server.should_exit = True
        thread.join(10)
        return summary
    con.print("live traffic keeps flowing; Ctrl-C to stop")
    stop = threading.Event()
    try:
        live(business, sender, truth, stop)
    finally:                     # Ctrl-C: stop cleanly, then let the CLI say goodbye in one line
        stop.set()
        sender.close()
        server.should_exit = True
        thread.join(10)
    return summary


def where_to_look(base: str, config: Path, read_key: str, ingest_key: str, admin_key: str, example: str | None,
                  truth: str) -> str:
    """The demo's last words: URLs, the key each needs, and CLI commands that work as printed (full CLI path)."""
    from revwatch.cli.app import cli_path
    rw = cli_path()
    cid = example or "CORRELATION_ID"
    return f"""
[bold]open the web UI[/bold]  {base}/ui/
  sign in with the read key below; a stuck payment's timeline: Overview → the stuck count of payment_to_posting
  → a payment

[bold]where to look[/bold] (the server runs until Ctrl-C)
  API docs   {base}/docs                     (no key)
  SLO API    {base}/api/v1/slos              (read key)
  journey    {base}/api/v1/journeys/{cid}
  metrics    {base}/metrics                  (read key; Prometheus set-up: docs/prometheus.md)
  keys       read {read_key}
             ingest {ingest_key}
             admin {admin_key}
  truth      {truth}   (which correlation IDs each incident hit)

[bold]try it[/bold] in another terminal, from this directory:
  export REVWATCH_CONFIG={config}
  export REVWATCH_READ_KEY={read_key} REVWATCH_INGEST_KEY={ingest_key} REVWATCH_ADMIN_KEY={admin_key}
  {rw} slo status
  {rw} trace {cid}
  {rw} journeys search --stuck payment_to_posting
  curl -H "Authorization: Bearer $REVWATCH_READ_KEY" {base}/metrics
"""
