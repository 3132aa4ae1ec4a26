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
        # Durability and back-pressure (issue #10): every fault is visible.
        self.spool_write_errors_total = Counter("revwatch_spool_write_errors", "Spool appends refused by the disk "
                                                "(ENOSPC, EIO); answered 503, nothing acknowledged", registry=r)
        self.spool_truncated_bytes_total = Counter("revwatch_spool_truncated_bytes", "Torn tail bytes cut by spool "
                                                   "recovery (never acknowledged)", registry=r)
        self.spool_skipped_bytes_total = Counter("revwatch_spool_skipped_bytes", "Damaged spool bytes skipped by the "
                                                 "reader (the records after them are kept)", registry=r)
        self.quarantined_total = Counter("revwatch_ingest_quarantined", "Rows the store refused, moved to the "
                                         "ingest_quarantine table", ["kind"], registry=r)
        self.conflicts_total = Counter("revwatch_ingest_conflicts", "Re-sent event IDs with different content "
                                       "(not stored)", registry=r)
        self.store_reads_refused_total = Counter("revwatch_store_reads_refused", "Store reads refused because they "
                                                 "would wait too long (503)", registry=r)
        self.reads_paced_seconds_total = Counter("revwatch_reads_paced_seconds", "Time reads waited for their "
                                                 "turn while ingest was busy (revwatch.priority)", registry=r)
        self.request_seconds = Histogram("revwatch_http_request_duration_seconds", "HTTP request latency",
                                         ["route"], registry=r)

    def register(self, collector) -> None:
        """Add a custom collector (its collect() is called at every scrape)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """The text exposition of everything registered."""
        return generate_latest(self.registry)
