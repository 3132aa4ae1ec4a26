"""`revwatch demo`: the whole product on the embedded store, with a simulated business and a few faults.

Starts the server in this process, backfills a few days (progress shown), prints the SLO table with burn rates,
the open alerts, one faulted journey as `revwatch trace` shows it, and where to look; then keeps a live trickle
going until Ctrl-C.
"""
from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
  - {name: payment-posting-15m, journey: payment_to_posting, objective: 0.995, window: 28d,
     sli: {kind: journey_latency, threshold: 15m}, alerting: {min_events: 5},
     description: "99.5 % of settled payments are posted in Odoo within 15 minutes"}
  - {name: renewal-invoiced-1h, journey: renewal_to_invoice, objective: 0.99, window: calendar_month,
     sli: {kind: journey_latency, threshold: 1h}, alerting: {min_events: 5}}
  - {name: payment-reconciled-1h, journey: payment_to_reconciliation, objective: 0.98, window: 7d,
     sli: {kind: journey_completion, max_age: 1h}, group_by: [gateway]}
  - {name: gateway-latency-2s, objective: 0.99, window: 7d, group_by: [service],
     sli: {kind: span_latency, span_name: "POST /v1/charges", threshold: 2s}}
  - {name: crm-sync-errors, objective: 0.995, window: 28d,
     sli: {kind: span_ratio, service: crm-sync, bad_when: {StatusCode: Error}}}
  - {name: odoo-api-errors, objective: 0.999, window: 28d,
     sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
evaluator: {interval: 15s}
"""

DEMO_FAULTS = ["crm_sync_errors@day1+2h/6h:rate=0.5", "price_misconfig@day1+12h/3h", "queue_backlog@day1+18h/1h",
               "duplicate_webhook@day2+1h/3h", "webhook_loss@day2+9h/2h:rate=0.5", "recon_missing_ref@day2+14h/2h",
               "gateway_latency@day3+3h/1h", "recon_partial@day3+6h/2h", "posting_delay@-50m/50m"]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(data_dir: Path, port: int = 8317, days: float = 3.0, seed: int = 7, rate: float = 150.0,
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

    params = SimParams(seed=seed, days=days, customers=400, rate=rate, faults=DEMO_FAULTS,
                       truth=str(data_dir / "sim-truth.jsonl"))
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
              f"faults injected: {', '.join(sorted({f.name for f in faults}))}")
    con.print(slo_table(docs))
    firing = [(d["name"], d.get("group"), a) for d in docs for a in d["alerts"] if a["firing"]]
    con.print("[bold]open alerts[/bold] (multi-window burn rate):" if firing else "[bold]open alerts:[/bold] none")
    for name, group, a in firing:
        con.print(f"  [{'red' if a['severity'] == 'page' else 'yellow'}]{a['severity'].upper()}[/] {name}"
                  f"{escape(f' [{group}]') if group else ''}: burn {a['long_burn_rate']:.1f} over {a['long']} and "
                  f"{a['short_burn_rate']:.1f} over {a['short']} (threshold {a['threshold']:g})")
    # the latest payment the backlog delayed that has been posted by now: a complete, visibly late journey
    example = next((t["correlation_id"] for t in reversed(business.truth)
                    if t["fault"] == "posting_delay" and t["at"] <= end.isoformat().replace("+00:00", "Z")), None)
    if example is None and business.truth:
        example = business.truth[-1]["correlation_id"]
    if example:
        con.print(f"\n[bold]example:[/bold] revwatch trace {example}   (a payment hit by the posting backlog)")
        try:
            con.print(journey_timeline(ctx.journeys.lookup(example)))
        except Exception as e:                      # still being delivered: say so rather than fail the demo
            con.print(f"  (not yet visible: {e})")
    stuck = ctx.journeys.stuck("payment_to_posting", limit=5)
    if stuck:
        con.print("[bold]stuck payments[/bold] (settled, not posted, past 15 min): " +
                  ", ".join(s["correlation_id"] for s in stuck))
    con.print(f"""
[bold]open the web UI[/bold]  {base}/ui/
  sign in with this key: [bold]{read_key}[/bold]
  (a stuck payment's timeline: Overview → the stuck count of payment_to_posting → a payment)

[bold]where to look[/bold]
  API docs   {base}/docs
  metrics    {base}/metrics
  SLO API    {base}/api/v1/slos
  journeys   {base}/api/v1/journeys/{example or '<correlation id>'}
  stuck      {base}/api/v1/journeys?stuck=payment_to_posting
  read key   {read_key}
  admin key  {admin_key}
  CLI        REVWATCH_CONFIG={data_dir}/revwatch.yaml REVWATCH_API_KEY={read_key} revwatch slo status
  truth      {params.truth}   (which correlation IDs each fault hit)
""")
    summary = {"base": base, "slos": docs, "example": example, "events": sender.sent_events,
               "spans": sender.sent_spans, "keys": {"read": read_key, "admin": admin_key}}
    if not keep_running:
        sender.close()
        server.should_exit = True
        thread.join(10)
        return summary
    con.print("live traffic keeps flowing; Ctrl-C to stop")
    stop = threading.Event()
    try:
        live(business, sender, truth, stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        sender.close()
        server.should_exit = True
        thread.join(10)
    return summary
