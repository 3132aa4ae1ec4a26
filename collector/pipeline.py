"""The collector's intake wiring, built in one place: the durable spool, the intake that acknowledges into it
(deduplicating by event id, its memory rebuilt from what is already stored) and the writer that drains it into the
store. `revwatch serve` and the one-shot `revwatch probes run` both build it here, so an event a probe produces
takes the same path (and gets the same dedup answer) whichever process ran the probe."""
from __future__ import annotations

from dataclasses import dataclass

from collector.intake import Intake
from collector.spool import Spool
from collector.writer import Writer
from revwatch.config import Config
from revwatch.metrics import Metrics
from revwatch.store import Store


@dataclass
class IngestPipeline:
    """spool → writer → store, with `intake` as the only way in."""
    spool: Spool
    writer: Writer
    intake: Intake

    def drain_now(self) -> int:
        """Write everything spooled so far into the store on this thread (for a process without the writer
        thread); returns the batches written. A store error propagates, and what was not written stays in the
        spool for the next drain."""
        n = 0
        while (batch := self.spool.next_batch(self.writer.batch_rows)) is not None:
            self.writer.write_batch(batch)
            n += 1
        return n


def build_ingest(cfg: Config, store: Store, metrics: Metrics) -> IngestPipeline:
    """The spool, writer and intake the config describes (nothing started: the caller starts the writer thread
    or drains with `drain_now`)."""
    spool = Spool(cfg.spool_dir, cfg.spool.max_bytes, cfg.spool.segment_bytes, metrics=metrics)
    writer = Writer(spool, store, metrics, cfg.spool.batch_rows, cfg.spool.flush_interval.total_seconds())
    intake = Intake(spool, store, metrics, cfg.spool.dedup_max_keys)
    intake.remember_stored(cfg.spool.dedup_horizon.total_seconds())
    return IngestPipeline(spool, writer, intake)
