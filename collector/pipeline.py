"""The collector's intake wiring, built in one place: the durable spool, the intake that acknowledges into it
(deduplicating by event id, its memory rebuilt from what is already stored) and the writer that drains it into the
store. `revwatch serve` and the one-shot `revwatch probes run` both build it here, so an event a probe produces
takes the same path (and gets the same dedup answer) whichever process ran the probe."""
from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Sequence

from collector.intake import Intake
from collector.rowcodec import EVENT_WIRE_COLUMNS, decode_lines, event_line
from collector.otlp import COL_CORRELATION as SPAN_CID
from collector.spool import KIND_EVENTS, KIND_EVENTS_TEXT, KIND_SPANS, Spool
from collector.writer import Writer
from revwatch.journeys.tier import JourneyTier, amount_text
from revwatch.config import Config
from revwatch.metrics import Metrics
from revwatch.store import Store

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


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

    def attach_journey_tier(self, budget_bytes: int) -> JourneyTier:
        """A journey tier fed by this pipeline (revwatch/journeys/tier.py): the intake hands it every acknowledged
        event and the IDs of acknowledged spans, the writer takes back what the store refuses. Call before
        anything is accepted; then `load_journey_tier` fills it with what was recorded before."""
        tier = JourneyTier(budget_bytes, EVENT_WIRE_COLUMNS, event_line)
        self.intake.journey_tier = self.writer.journey_tier = tier
        return tier

    def load_journey_tier(self, tier: JourneyTier, store: Store) -> None:
        """Fill `tier` with the spool's records not yet stored (acknowledged by an earlier process) and the
        store's events, then let it serve (on the caller's thread: a background thread at start)."""
        lines: list[bytes] = []
        span_ids: set[str] = set()
        try:
            for rec in self.spool.pending_records():     # while the writer drains (and removes) segments
                if rec.kind in (KIND_EVENTS, KIND_EVENTS_TEXT):
                    lines += rec.payload.split(b"\n")
                elif rec.kind == KIND_SPANS:
                    span_ids.update(row[SPAN_CID] for row in decode_lines(rec.payload))
        except Exception as e:      # never left loading: it would keep every feed aside, unanswered, for ever
            tier.give_up(f"could not read the spool's unstored records: {e}")
            return
        tier.load(store, lines, span_ids)


def build_ingest(cfg: Config, store: Store, metrics: Metrics) -> IngestPipeline:
    """The spool, writer and intake the config describes (nothing started: the caller starts the writer thread
    or drains with `drain_now`)."""
    spool = Spool(cfg.spool_dir, cfg.spool.max_bytes, cfg.spool.segment_bytes, metrics=metrics)
    writer = Writer(spool, store, metrics, cfg.spool.batch_rows, cfg.spool.flush_interval.total_seconds())
    intake = Intake(spool, store, metrics, cfg.spool.dedup_max_keys)
    intake.remember_stored(cfg.spool.dedup_horizon.total_seconds())
    return IngestPipeline(spool, writer, intake)


def inserted_rows_hook(tier: JourneyTier):
    """A `Store.row_listeners` entry: events and spans inserted as rows (tools, tests, the intake processes' row
    inserts) reach `tier` — encoded as the collector encodes them, the amount as the store renders it."""
    def on_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        if table == "spans" and "CorrelationId" in columns:
            at = list(columns).index("CorrelationId")
            tier.add_spans(r[at] for r in rows)
        elif table == "events":
            tier.add_events(*_event_rows(columns, rows))
    return on_rows


def _event_rows(columns: Sequence[str], rows: Sequence[Sequence]) -> tuple[list[str], list[dict], list[bytes]]:
    at = {c: i for i, c in enumerate(columns)}
    cids, attrs, lines = [], [], []
    for r in rows:
        col = functools.partial(_column, r, at)
        when = col("OccurredAt")
        if isinstance(when, dt.datetime):
            aware = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
            when = (aware - _EPOCH) // dt.timedelta(milliseconds=1)
        text = col("AmountText", "") or amount_text(col("Amount"))
        row = [col("EventId", ""), col("Type", ""), col("CorrelationId", ""), int(when or 0), col("Source", ""),
               col("Journey", ""), text, col("Currency", ""), dict(col("Attributes") or {})]
        cids.append(row[2])
        attrs.append(row[8])
        lines.append(event_line(row))
    return cids, attrs, lines


def _column(row: Sequence, at: dict[str, int], name: str, default=None):
    return row[at[name]] if name in at else default


def forwarded_lines_hook(tier: JourneyTier):
    """`on_lines` for revwatch.remote_store.owner_router: what intake processes store reaches the owner's tier —
    span IDs before the insert (never answered from memory without them), events once stored."""
    def on_lines(table: str, body: bytes, stored: bool) -> None:
        if table == "spans" and not stored:
            tier.add_span_lines(body.split(b"\n"), SPAN_CID)
        elif table == "events" and stored:
            tier.add_event_lines(body.split(b"\n"))
    return on_lines
