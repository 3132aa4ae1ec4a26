"""CLI commands of the simulator and the demo, registered on the main typer app."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional

import typer

from revwatch.cli import app, err, fail, out


@app.command()
def demo(data_dir: Path = typer.Option(Path(".revwatch/demo"), "--data-dir", help="demo store (reset each run)"),
         port: int = typer.Option(8317, "--port", help="server port (a free one is chosen if taken)"),
         days: float = typer.Option(7.0, "--days", min=0.1, max=30,
                                    help="simulated days to backfill (7 = the demo's SLO windows)"),
         seed: int = typer.Option(7, "--seed"),
         no_live: bool = typer.Option(False, "--no-live", help="exit after showing the backfill")):
    """Run everything on the embedded store with a simulated business and faults; prints where to look."""
    from revwatch.sim.demo import run_demo
    run_demo(data_dir.resolve(), port, days, seed, keep_running=not no_live, console=out)


@app.command()
def simulate(url: Optional[str] = typer.Option(None, "--url", help="revwatch server (default: the config's "
                                                                       "server.host:port)"),
             key: Optional[str] = typer.Option(None, "--key", envvar="REVWATCH_INGEST_KEY",
                                               help="an ingest key (default: $REVWATCH_INGEST_KEY, as `revwatch "
                                                    "init` prints it)"),
             config: Optional[Path] = typer.Option(None, "--config", "-c", help="config YAML (default: "
                                                   "$REVWATCH_CONFIG, else ./revwatch.yaml)"),
             seed: int = typer.Option(1, "--seed"),
             days: float = typer.Option(1.0, "--days", min=0, help="past days to backfill (correct timestamps)"),
             customers: int = typer.Option(300, "--customers", min=1),
             rate: float = typer.Option(120.0, "--rate", min=0.1, help="business transactions per hour"),
             speed: float = typer.Option(1.0, "--speed", min=0.1, help="live-traffic multiplier"),
             fault: List[str] = typer.Option([], "--fault",
                                             help="NAME@dayN+OFFSET\\[/DURATION]\\[:rate=R], repeatable"),
             scenario: Optional[Path] = typer.Option(None, "--scenario", help="YAML list of faults"),
             truth: Path = typer.Option(Path("sim-truth.jsonl"), "--truth", help="ground-truth JSON lines"),
             live_mode: bool = typer.Option(False, "--live", help="keep sending live traffic after the backfill")):
    """Simulate a subscription business with injectable faults; sends real OTLP spans and business events."""
    from revwatch.sim.faults import FaultError
    from revwatch.sim.run import SimParams, TruthWriter, backfill, build, live
    from revwatch.sim.sender import SendError, Sender
    from revwatch.cli import _config, _key_from_env
    if url is None:
        cfg = _config(config)
        host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        url = f"http://{host}:{cfg.server.port}"
    key = key or _key_from_env("ingest")
    if not key:
        fail("an ingest key is needed: --key KEY or REVWATCH_INGEST_KEY (`revwatch init` or "
             "`revwatch keys create --scope ingest` prints one)")
    params = SimParams(seed=seed, days=days, customers=customers, rate=rate, speed=speed, faults=list(fault),
                       scenario=str(scenario) if scenario else None, truth=str(truth))
    try:
        business, faults, start, end = build(params)
    except FaultError as e:
        fail(str(e))
    sender = Sender(url, key, seed=seed)
    writer = TruthWriter(params.truth, business)
    try:
        backfill(business, sender, start, end, writer,
                 progress=lambda frac, ev, sp: err.print(f"\r{frac:5.0%}  {ev} events  {sp} spans", end=""))
        err.print()
        out.print(f"sent {sender.sent_events} events ({sender.duplicates} duplicates recognised), "
                  f"{sender.sent_spans} spans; {len(business.truth)} faulted items in {truth}")
        if live_mode:
            out.print("live traffic; Ctrl-C to stop")
            stop = threading.Event()
            try:
                live(business, sender, writer, stop, speed)
            except KeyboardInterrupt:
                stop.set()
    except SendError as e:
        fail(str(e), 1)
    finally:
        sender.close()


anomaly_app = typer.Typer(help="Billing-variance and reconciliation-risk findings.", no_args_is_help=True)
app.add_typer(anomaly_app, name="anomaly")


@anomaly_app.command("scan")
def anomaly_scan(config: Optional[Path] = typer.Option(None, "--config", "-c"),
                 as_json: bool = typer.Option(False, "--json"),
                 limit: int = typer.Option(10, "--limit", min=1, help="top findings to show")):
    """Run the detectors now and show the top findings."""
    import json
    from anomaly.detectors import list_findings, scan
    from revwatch.cli import Remote, _config, _local_or_remote
    target = _local_or_remote(_config(config))
    if isinstance(target, Remote):
        summary = target.request("POST", "/api/v1/anomalies/scan")
        items = target.request("GET", "/api/v1/anomalies", params={"limit": limit})["items"]
    else:
        summary, items = scan(target), list_findings(target, limit=limit)
    if as_json:
        print(json.dumps({"summary": summary, "top": items}, default=str))
        return
    model = summary.get("reconciliation_model") or {}
    out.print(f"scan: {summary['findings'] or 'no findings'} open (reconciliation model: "
              f"{model.get('model') or model.get('refused') or model.get('error')})", markup=False)
    for f in items:
        out.print(f"  {f['score']:.2f}  {f['kind']:20} {f['correlation_id']:14} {f['ref']:18} "
                  f"{'; '.join(f['reasons'])}",
                  markup=False)


probes_app = typer.Typer(help="Scheduled pollers: Odoo, RabbitMQ, Redis, HTTP.", no_args_is_help=True)
app.add_typer(probes_app, name="probes")


@probes_app.command("run")
def probes_run(config: Optional[Path] = typer.Option(None, "--config", "-c"),
               once: bool = typer.Option(True, "--once", help="run every configured probe once and print"),
               as_json: bool = typer.Option(False, "--json")):
    """Run every configured probe once and print what it saw (samples, events, notes)."""
    import json
    from probes.base import ProbeConfigError
    from probes.service import ProbeService
    from revwatch.cli import Remote, _config, _local_or_remote
    cfg = _config(config)
    if not cfg.probes:
        fail("no probes configured (add probes: to the config)")
    target = _local_or_remote(cfg)
    if isinstance(target, Remote):
        fail("the server holds the store and runs the probes on its schedule; stop it to run them by hand")
    intake = None
    try:
        from collector.intake import Intake
        from collector.spool import Spool
        from collector.writer import Writer
        from revwatch.metrics import Metrics
        spool = Spool(cfg.spool_dir, cfg.spool.max_bytes, cfg.spool.segment_bytes)
        intake = Intake(spool, target, Metrics(), cfg.spool.dedup_max_keys)
        service = ProbeService(cfg.probes, target, intake)
    except ProbeConfigError as e:
        fail(str(e))
    results = service.run_once()
    writer = Writer(spool, target)
    while (batch := spool.next_batch(50_000)) is not None:
        writer.write_batch(batch)
    spool.close()
    if as_json:
        print(json.dumps(results, default=str))
    else:
        for r in results:
            out.print(f"[bold]{r['probe']}[/bold] ({r['type']}): {'up' if r['up'] else 'DOWN'} in {r['seconds']}s, "
                      f"{r['events']} events ({r['events_duplicates']} already known)")
            for s in r["samples"]:
                labels = ",".join(f"{k}={v}" for k, v in s["labels"].items() if k != "probe")
                out.print(f"    {s['name']}{{{labels}}} = {s['value']:g}", markup=False)
            for n in r["notes"]:
                out.print(f"    note: {n}", markup=False)
    if any(not r["up"] for r in results):
        raise typer.Exit(1)


from revwatch import anomaly_commands  # noqa: E402,F401  (anomaly list / ack / series on anomaly_app)
