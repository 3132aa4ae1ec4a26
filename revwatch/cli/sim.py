"""`revwatch demo` and `revwatch simulate`: the simulated business (revwatch.sim) from the shell."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional

import typer

from revwatch.cli.app import app, err, fail, key_from_env, load_cli_config, out, server_url


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
    if url is None:
        url = server_url(load_cli_config(config))
    key = key or key_from_env("ingest")
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
