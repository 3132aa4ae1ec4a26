"""Running the simulator: backfill N past days (correct timestamps), then optionally a live trickle."""
from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from revwatch.sim.faults import Fault, load_scenario, parse_fault
from revwatch.sim.model import Business
from revwatch.sim.sender import Sender


@dataclass
class SimParams:
    seed: int = 1
    days: float = 3.0
    customers: int = 300
    rate: float = 120.0                  # business transactions per hour
    speed: float = 1.0                   # live mode: traffic multiplier
    faults: list[str] = field(default_factory=list)
    scenario: str | None = None
    truth: str | None = None
    end: dt.datetime | None = None       # backfill up to here (default: now, to the minute)
    run: str = ""                        # prefix of every id (revwatch.sim.model.Business); see run_tag


def run_tag(seed: int, end: dt.datetime) -> str:
    """The id prefix of a run: the same seed and end give the same tag (a repeat is recognised as duplicates),
    any other run another one (its ids never collide with earlier runs' on the same store)."""
    import hashlib
    return hashlib.sha256(f"{seed}|{end.isoformat()}".encode()).hexdigest()[:8] + "-"


def build(params: SimParams) -> tuple[Business, list[Fault], dt.datetime, dt.datetime]:
    """The business and its faults for [end - days, end)."""
    end = params.end or dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    start = end - dt.timedelta(days=params.days)
    faults = [parse_fault(f, start, end) for f in params.faults]
    if params.scenario:
        faults += load_scenario(params.scenario, start, end)
    return Business(params.seed, start, params.customers, params.rate, faults, run=params.run), faults, start, end


class TruthWriter:
    """Appends the business's ground truth to a JSON-lines file as it grows."""

    def __init__(self, path: str | None, business: Business):
        self.path, self.business, self.written = (Path(path) if path else None), business, 0
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def flush(self) -> None:
        new = self.business.truth[self.written:]
        if self.path and new:
            with self.path.open("a") as f:
                for row in new:
                    f.write(json.dumps(row) + "\n")
        self.written = len(self.business.truth)


def backfill(business: Business, sender: Sender, start: dt.datetime, end: dt.datetime, truth: TruthWriter,
             progress: Callable[[float, int, int], None] | None = None, step=dt.timedelta(hours=2)) -> None:
    """Simulate [start, end) in steps, sending each step's events and spans."""
    t = start
    while t < end:
        t = min(t + step, end)
        events, spans = business.advance(t)
        sender.events(events)
        sender.spans(spans)
        truth.flush()
        if progress:
            progress((t - start) / (end - start), sender.sent_events, sender.sent_spans)
    sender.flush()


def live(business: Business, sender: Sender, truth: TruthWriter, stop: threading.Event, speed: float = 1.0,
         tick: float = 2.0) -> None:
    """Keep the business running in real time (arrival rate × speed) until `stop` is set."""
    business.rate *= speed
    while not stop.wait(tick):
        events, spans = business.advance(dt.datetime.now(dt.timezone.utc))
        sender.events(events)
        sender.spans(spans)
        truth.flush()
    sender.flush()
