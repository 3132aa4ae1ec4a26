"""The ingest contract other packages program against: where business events go, and how "not now" is said.

The collector implements it (its intake validates exactly as `POST /api/v1/events` does, deduplicates and spools
durably); producers such as the probes depend only on this module, so no feature package reaches into the
collector's internals. Invariant: a `submit_events` that returns has made every accepted event durable; one that
raises `IngestRefused` has acknowledged nothing of that call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class IngestRefused(Exception):
    """The durable spool cannot take more now (full, or its disk refused the write): retry after `retry_after`."""
    retry_after = 30


@dataclass
class Submitted:
    """What became of submitted events: accepted, already recorded (a duplicate or a re-observation of the same
    event id), and rejected as invalid — (index, error, field) each."""
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str, str | None]] = field(default_factory=list)


class EventSink(Protocol):
    def submit_events(self, items: list[dict], atomic: bool = False) -> Submitted:
        """Validate and durably accept business events (DESIGN §4 dicts). With `atomic`, one invalid item means
        nothing is accepted. Raises IngestRefused when the spool cannot take them now."""
        ...
