"""`revwatch probes run`: run the configured probes from the shell, against the store this process opens.

`--once` runs every probe once, prints what each saw and exits (1 when one is down). Without it the probes run on
their configured schedule in the foreground, as `revwatch serve` runs them, until Ctrl-C. Either way the events
they derive go through the collector's intake wiring (collector/pipeline.py) exactly as in the server. While a
server holds the store, the server runs the probes and this command refuses.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Optional

import typer

from revwatch.cli.app import app, err, fail, load_cli_config, out
from revwatch.cli.target import open_target
from revwatch.store import StoreError

probes_app = typer.Typer(help="Scheduled pollers: Odoo, RabbitMQ, Redis, HTTP.", no_args_is_help=True)
app.add_typer(probes_app, name="probes")


@probes_app.command("run")
def probes_run(config: Optional[Path] = typer.Option(None, "--config", "-c"),
               once: bool = typer.Option(False, "--once", help="run every configured probe once, print and exit "
                                                               "(default: run on their schedule until Ctrl-C)"),
               as_json: bool = typer.Option(False, "--json", help="one JSON document (--once) or one JSON line "
                                                                  "per run")):
    """Run the configured probes and print what each saw (samples, events, notes): once with --once, else on
    their schedule until Ctrl-C."""
    from collector.pipeline import build_ingest
    from probes.base import ProbeConfigError
    from probes.service import ProbeService
    from revwatch.metrics import Metrics
    cfg = load_cli_config(config)
    if not cfg.probes:
        fail("no probes configured (add probes: to the config)")
    store = open_target(cfg).local_store(
        "the server holds the store and runs the probes on its schedule; stop it to run them by hand")
    ingest = build_ingest(cfg, store, Metrics())
    try:
        try:
            service = ProbeService(cfg.probes, store, ingest.intake)
        except ProbeConfigError as e:
            fail(str(e))
        if once:
            results = service.run_once()
            _drain(ingest)
            if as_json:
                print(json.dumps(results, default=str))
            else:
                for r in results:
                    _print_result(r)
            if any(not r["up"] for r in results):
                raise typer.Exit(1)
        else:
            _run_scheduled(service, ingest, as_json)
    finally:
        ingest.spool.close()


def _drain(ingest) -> None:
    """Write the spooled probe events now; a store fault is one line and exit 1 (the events stay spooled and
    are written by the next run or server start)."""
    try:
        ingest.drain_now()
    except StoreError as e:
        fail(f"the probes ran but their events stay in the spool until the store answers: {e}", 1)


def _run_scheduled(service, ingest, as_json: bool) -> None:
    """The probes on their schedule with the writer thread draining, printing each run, until Ctrl-C (exit 130
    after the writer has drained what it can)."""
    from apscheduler.schedulers.background import BackgroundScheduler
    scheduler = BackgroundScheduler(timezone="UTC")
    service.schedule(scheduler)
    ingest.writer.start()
    scheduler.start()
    err.print(f"running {len(service.runners)} probe(s) on their schedule; Ctrl-C to stop", markup=False,
              highlight=False)
    seen: dict[str, int] = {}
    stop = threading.Event()
    try:
        while not stop.wait(0.2):
            for name, result in list(service.last_results.items()):
                if seen.get(name) != id(result):            # record() stores a new dict per run
                    seen[name] = id(result)
                    print(json.dumps(result, default=str), flush=True) if as_json else _print_result(result)
    except KeyboardInterrupt:
        scheduler.shutdown(wait=False)
        ingest.writer.stop()
        raise typer.Exit(130) from None


def _print_result(r: dict) -> None:
    out.print(f"[bold]{r['probe']}[/bold] ({r['type']}): {'up' if r['up'] else 'DOWN'} in {r['seconds']}s, "
              f"{r['events']} events ({r['events_duplicates']} already known)")
    for s in r["samples"]:
        labels = ",".join(f"{k}={v}" for k, v in s["labels"].items() if k != "probe")
        out.print(f"    {s['name']}{{{labels}}} = {s['value']:g}", markup=False)
    for n in r["notes"]:
        out.print(f"    note: {n}", markup=False)
