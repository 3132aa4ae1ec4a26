"""The ingest contract other packages program against: where business events go, and how "not now" is said.

The collector implements it (its intake validates exactly as `POST /api/v1/events` does, deduplicates and spools
durably); producers such as the probes depend only on this module, so no feature package reaches into the
collector's internals. Invariant: a `submit_events` that returns has made every accepted event durable; one that
raises `IngestRefused` has acknowledged nothing of that call.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol


def retry_after_hint(low: int = 1, high: int = 3) -> str:
    """A `Retry-After` value for a refusal that clears in seconds: whole seconds (RFC 9110 delay-seconds) drawn
    uniformly from [low, high], so that the senders a refusal turned away do not all come back at once.

    Why short: OTLP/HTTP clients must wait at least Retry-After (docs/http.md, "Retry-After") and the OpenTelemetry
    SDKs give an export 10 s in all by default; they drop the batch at once when the hint is longer than the time
    left. A hint of at most 5 s leaves room for two or more retries inside those 10 s."""
    return str(random.randint(low, high))


class IngestRefused(Exception):
    """The durable spool cannot take more now (full, or its disk refused the write): retry after `retry_after`
    seconds (jittered within `retry_after_range`, each read of the property draws anew)."""
    retry_after_range: tuple[int, int] = (2, 5)      # the store is behind: a little longer than a disk blip

    @property
    def retry_after(self) -> str:
        """The Retry-After header value for this refusal."""
        return retry_after_hint(*self.retry_after_range)


@dataclass
class Submitted:
    """What became of submitted events: accepted, already recorded (a duplicate or a re-observation of the same
    event id), and rejected as invalid — (index, error, field) each."""
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str, str | None]] = field(default_factory=list)


class EventSink(Protocol):
    def submit_events(self, items: list[dict], atomic: bool = False) -> Submitted:
        """Validate and durably accept business events (docs/events.md dicts). With `atomic`, one invalid item means
        nothing is accepted. Raises IngestRefused when the spool cannot take them now."""
        ...
