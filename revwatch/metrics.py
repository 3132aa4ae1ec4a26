"""The Prometheus registry of one revwatch process and the ingest metrics of DESIGN.md §7.

Packages add their own collectors (SLO results, journeys, anomalies) with `Metrics.register`.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.spans_total = Counter("revwatch_ingest_spans", "Spans accepted (acknowledged and spooled)",
                                   registry=r)
        self.events_total = Counter("revwatch_ingest_events", "Business events accepted", registry=r)
        self.duplicates_total = Counter("revwatch_ingest_duplicates", "Items recognised as re-deliveries",
                                        ["kind"], registry=r)
        self.rejected_total = Counter("revwatch_ingest_rejected", "Items or requests rejected", ["reason"],
                                      registry=r)
        self.spool_bytes = Gauge("revwatch_spool_bytes", "Bytes in the durable spool not yet in the store",
                                 registry=r)
        self.store_writes_total = Counter("revwatch_store_writes", "Rows written to the store", ["table"],
                                          registry=r)
        self.store_write_errors_total = Counter("revwatch_store_write_errors", "Failed store write attempts",
                                                registry=r)
        self.request_seconds = Histogram("revwatch_http_request_duration_seconds", "HTTP request latency",
                                         ["route"], registry=r)

    def register(self, collector) -> None:
        """Add a custom collector (its collect() is called at every scrape)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text exposition of everything registered."""
        return generate_latest(self.registry)
