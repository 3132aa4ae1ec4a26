"""`revwatch demo` and `revwatch simulate`: the simulated business (revwatch.sim) from the shell."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional

import typer

from revwatch.cli.app import app, at_param, err, fail, key_from_env, load_cli_config, out


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
             seed: Optional[int] = typer.Option(None, "--seed", help="repeat a run: the same --seed and --end send "
                                                "the same events again (recognised as duplicates); default: a new "
                                                "random seed, so every run adds new data"),
             end: Optional[str] = typer.Option(None, "--end", help="RFC 3339 end of the backfill (default: now, to "
                                               "the minute)"),
             days: float = typer.Option(1.0, "--days", min=0, help="past days to backfill (correct timestamps)"),
             customers: int = typer.Option(300, "--customers", min=1),
             rate: float = typer.Option(120.0, "--rate", min=0.1, help="business transactions per hour"),
             speed: float = typer.Option(1.0, "--speed", min=0.1, help="live-traffic multiplier"),
             fault: List[str] = typer.Option([], "--fault",
                                             help="NAME@dayN+OFFSET\\[/DURATION]\\[:rate=R], repeatable"),
             scenario: Optional[Path] = typer.Option(None, "--scenario", help="YAML list of faults"),
             truth: Optional[Path] = typer.Option(None, "--truth", help="write the ground truth (which items each "
                                                  "fault hit) as JSON lines to this file"),
             live_mode: bool = typer.Option(False, "--live", help="keep sending live traffic after the backfill")):
    """Simulate a subscription business with injectable faults; sends real OTLP spans and business events.

    Exit 0 when the server took every event (new or recognised duplicates), 1 when it refused some (one summary
    line) or cannot be reached, 2 for bad options."""
    import datetime as dt
    import secrets
    from revwatch.sim.faults import FaultError
    from revwatch.sim.run import SimParams, TruthWriter, backfill, build, live, run_tag
    from revwatch.sim.sender import SendError, Sender
    if url is None:
        url = load_cli_config(config).server.local_url()
    key = key or key_from_env("ingest")
    if not key:
        fail("an ingest key is needed: --key KEY or REVWATCH_INGEST_KEY (`revwatch init` or "
             "`revwatch keys create --scope ingest` prints one)")
    until = (at_param(end, "--end") or dt.datetime.now(dt.timezone.utc)).replace(second=0, microsecond=0)
    chosen = seed if seed is not None else secrets.randbelow(2**31)
    params = SimParams(seed=chosen, days=days, customers=customers, rate=rate, speed=speed, faults=list(fault),
                       scenario=str(scenario) if scenario else None, truth=str(truth) if truth else None,
                       end=until, run=run_tag(chosen, until))
    try:
        business, faults, start, stop_at = build(params)
    except FaultError as e:
        fail(str(e))
    sender = Sender(url, key, seed=chosen)
    try:
        sender.check()
        if seed is None:
            err.print(f"seed {chosen}, end {until:%Y-%m-%dT%H:%MZ} (--seed {chosen} --end "
                      f"{until:%Y-%m-%dT%H:%MZ} repeats this run)", markup=False, highlight=False, soft_wrap=True)
        writer = TruthWriter(params.truth, business)
        backfill(business, sender, start, stop_at, writer, progress=_progress_line())
        _end_progress_line()
        truth_note = f"; {len(business.truth)} faulted items in {truth}" if truth else ""
        out.print(f"sent {sender.sent_events:,} new events ({sender.duplicates:,} duplicates recognised), "
                  f"{sender.sent_spans:,} spans{truth_note}", markup=False, highlight=False, soft_wrap=True)
        problem = sender.problems()
        if problem:
            fail(problem, 1)
        if live_mode:
            out.print("live traffic; Ctrl-C to stop")
            stop = threading.Event()
            try:
                live(business, sender, writer, stop, speed)
            except KeyboardInterrupt:
                stop.set()
            problem = sender.problems()
            if problem:
                fail(problem, 1)
    except SendError as e:
        _end_progress_line()
        fail(str(e), 1)
    finally:
        sender.close()


_progress_state = {"shown": False}


def _progress_line():
    """Progress on one line of a terminal, rewritten in place (nothing when stderr is not a terminal: a log or a
    pipe gets the summary only)."""
    import sys
    if not sys.stderr.isatty():
        return None

    def show(frac: float, events: int, spans: int) -> None:
        sys.stderr.write(f"\r\033[K{frac:5.0%}  {events:,} events  {spans:,} spans")
        sys.stderr.flush()
        _progress_state["shown"] = True
    return show


def _end_progress_line() -> None:
    import sys
    if _progress_state["shown"]:
        sys.stderr.write("\n")
        sys.stderr.flush()
        _progress_state["shown"] = False
