"""Journey lookup and search for incident responders: everything that happened to one correlation ID, in one call.

Why this is fast at 10 M+ rows: `correlation_ts` (one granule) says when the ID was active, so the reads of
`spans` and `events` — sorted by CorrelationId first — touch only the daily partitions of that time range and are
primary-key range reads there. `correlation_ts` also keeps the correlation's trace ids: spans of those traces
stored under another correlation ID (a child span sent in a later export without the attribute lives under its
trace id) come in the same read, and events and spans come in one UNION ALL (each round trip into the embedded
engine costs milliseconds). Related IDs come from `attribute_links`, a point read per (attribute, value). Three
round trips, no table scan (bench/lookup.py measures them).

An ID whose records are events only is usually not read from the store at all: the journey tier
(revwatch/journeys/tier.py) holds every journey's events and links in memory, and `lookup` builds the same document
from them (~0.7 ms of CPU instead of ~10 ms of the engine's; tests/test_journey_tier.py compares the two).
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Callable, Iterable

from revwatch.config import JourneyConfig
from revwatch.journeys import money as m
from revwatch.journeys.policy import Policy
from revwatch.journeys.reader import JourneyReader, StuckInstance
from revwatch.journeys.sql import steps_of
from revwatch.journeys.tier import AMOUNT_SQL, RELATED_PER_VALUE, JourneyTier
from revwatch.schema import LINK_ATTRIBUTES
from revwatch.store import Store
from revwatch.units import as_utc, utcnow

ERROR_EVENT_TYPES = {"webhook.failed", "payment.reconciliation_failed"}
_SLACK = dt.timedelta(seconds=1)
_TRACE_SLACK = dt.timedelta(hours=1)
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def _iso(t: dt.datetime | None) -> str | None:
    return as_utc(t).isoformat().replace("+00:00", "Z") if t else None


class NotFound(Exception):
    pass


class _TierTurnedOff(Exception):
    """The tier stopped answering between a lookup's events and its links (lookup_in_memory then gives up)."""


class JourneyService:
    """Reads spans and events of a correlation ID and explains them against the configured journeys."""

    def __init__(self, store: Store, journeys: dict[str, JourneyConfig], thresholds: dict[str, dt.timedelta] | Policy,
                 tier: JourneyTier | None = None):
        """`tier`: the events of every journey in memory (revwatch/journeys/tier.py); a lookup it covers reads no
        store (the document is built here either way, from the same records)."""
        self.store, self.journeys, self.tier = store, journeys, tier
        self.reader = JourneyReader(store, journeys, thresholds)
        self.policy = self.reader.policy

    # -- raw reads ----------------------------------------------------------------------------------------
    def whereabouts(self, cid: str) -> tuple[dt.datetime, dt.datetime, list[str]] | None:
        """When the ID was active and its trace ids (`correlation_ts`, one granule), or None when unknown."""
        row = self.store.query(
            f"SELECT min(First), max(Last), arraySlice(groupUniqArrayArray(Traces), 1, 500), count() "
            f"FROM {self.store.table('correlation_ts')} WHERE CorrelationId = {{cid:String}}", {"cid": cid}).rows[0]
        if not row[3]:
            return None
        return as_utc(row[0]) - _SLACK, as_utc(row[1]) + _SLACK, row[2]

    _SPAN_COLS = ("Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, Duration, StatusCode, "
                  "StatusMessage, SpanAttributes, CorrelationId")

    def records_of(self, cid: str, lo: dt.datetime, hi: dt.datetime,
                   traces: list[str]) -> tuple[list[dict], list[dict]]:
        """(events, spans) of a correlation ID within [lo, hi], deduplicated, in one round trip. Of an event ID
        stored twice (re-sent with other content past the dedup memory), the copy stored last: the one the
        ReplacingMergeTree keeps once it merges, so the answer does not change with merges (the tier keeps it too).

        Spans exported without a correlation attribute are stored under their trace id (docs/events.md), so the rest
        of a trace is `CorrelationId IN (its trace ids)`, within an hour of the correlation's own time range.
        """
        t = self.store.table
        sql = f"""
            SELECT 'event' AS kind, toDateTime64(OccurredAt, 9, 'UTC') AS at, EventId AS id, Type AS name,
                   Source AS system, '' AS trace, '' AS parent, '' AS span_kind, toUInt64(0) AS duration, '' AS status,
                   '' AS status_message, CAST(Attributes, 'Map(String, String)') AS attrs,
                   {AMOUNT_SQL} AS amount, toString(Currency) AS currency,
                   toString(Journey) AS journey,
                   CorrelationId AS cid
            FROM {t('events')} WHERE CorrelationId = {{cid:String}}
              AND OccurredAt BETWEEN {{lo:DateTime64(3, 'UTC')}} AND {{hi:DateTime64(3, 'UTC')}}
            ORDER BY id, IngestedAt DESC LIMIT 1 BY id"""
        if traces:
            # Every span stored under an ID adds its trace id to `correlation_ts` (the spans view), so an ID with
            # no trace ids there has no spans, under its own ID or another: the spans read (2-4 ms of the engine's
            # per lookup, measured on 1 M events) is skipped for a journey of business events alone.
            sql += f"""
            UNION ALL
            SELECT 'span', Timestamp, SpanId, toString(SpanName), toString(ServiceName), TraceId, ParentSpanId,
                   toString(SpanKind), Duration, toString(StatusCode), StatusMessage,
                   CAST(SpanAttributes, 'Map(String, String)'), '', '', toString(Journey), CorrelationId
            FROM {t('spans')} WHERE CorrelationId IN {{keys:Array(String)}}
              AND (CorrelationId = {{cid:String}} OR TraceId IN {{keys:Array(String)}})
              AND Timestamp BETWEEN {{slo:DateTime64(9, 'UTC')}} AND {{shi:DateTime64(9, 'UTC')}}
            LIMIT 1 BY TraceId, SpanId"""
        rows = self.store.query(sql, {"cid": cid, "lo": lo, "hi": hi, "keys": [cid, *traces],
                                      "slo": lo - _TRACE_SLACK, "shi": hi + _TRACE_SLACK}).dicts()
        events = [{"EventId": r["id"], "Type": r["name"], "OccurredAt": r["at"], "Source": r["system"],
                   "Journey": r["journey"], "Amount": r["amount"], "Currency": r["currency"],
                   "Attributes": r["attrs"]} for r in rows if r["kind"] == "event"]
        events.sort(key=lambda e: e["EventId"])    # a fixed order for ties in time (the tier reads alike)
        spans = [{"Timestamp": r["at"], "TraceId": r["trace"], "SpanId": r["id"], "ParentSpanId": r["parent"],
                  "SpanName": r["name"], "SpanKind": r["span_kind"], "ServiceName": r["system"],
                  "Duration": r["duration"], "StatusCode": r["status"], "StatusMessage": r["status_message"],
                  "SpanAttributes": r["attrs"], "CorrelationId": r["cid"]} for r in rows if r["kind"] == "span"]
        return events, spans

    def trace_spans(self, trace_id: str) -> list[dict]:
        """Every span of one trace, whatever correlation IDs its spans were stored under (`trace_id_ts`)."""
        t = self.store.table
        rows = self.store.query(
            f"SELECT groupUniqArray(CorrelationId), min(Start), max(End) FROM {t('trace_id_ts')} "
            f"WHERE TraceId = {{tid:String}}", {"tid": trace_id}).rows
        keys, lo, hi = rows[0]
        if not keys:
            return []
        return self.store.query(
            f"SELECT {self._SPAN_COLS} FROM {t('spans')} WHERE CorrelationId IN {{keys:Array(String)}} "
            f"AND TraceId = {{tid:String}} AND Timestamp BETWEEN {{lo:DateTime64(9, 'UTC')}} AND "
            f"{{hi:DateTime64(9, 'UTC')}} LIMIT 1 BY SpanId",
            {"keys": keys, "tid": trace_id, "lo": as_utc(lo), "hi": as_utc(hi)}).dicts()

    # -- the document -------------------------------------------------------------------------------------
    def lookup(self, cid: str, now: dt.datetime | None = None) -> dict:
        """The journey document of a correlation ID; raises NotFound when nothing has that ID."""
        now = now or utcnow()
        # every event of every ID is in memory, no spans (None: the tier turned off since `covers`, read the store)
        held = self.tier.events_of(cid) if self.tier is not None and self.tier.covers(cid) else None
        if held is not None:
            return self._document(cid, held, [], self._links_in_tier, now)
        events: list[dict] = []
        spans: list[dict] = []
        if (where := self.whereabouts(cid)) is not None:
            events, spans = self.records_of(cid, *where)
        if _TRACE_ID.match(cid):                           # a trace id: the whole trace, wherever it is stored
            seen = {(x["TraceId"], x["SpanId"]) for x in spans}
            spans += [x for x in self.trace_spans(cid) if (x["TraceId"], x["SpanId"]) not in seen]
        return self._document(cid, events, spans, self._links_in_store, now)

    def lookup_in_memory(self, cid: str, now: dt.datetime | None = None) -> dict | None:
        """`lookup` when the tier answers it whole, without a store query (the route runs it on the event loop);
        None when it cannot (or not cheaply: `JourneyTier.events_of`) — then `lookup`. Raises NotFound as `lookup`
        does."""
        tier = self.tier
        held = tier.events_of(cid, cheap=True) if tier is not None and tier.covers(cid) else None
        if tier is None or held is None:
            return None

        def links(pairs: Iterable[tuple[str, str]], of: str) -> dict[tuple[str, str], list[str]]:
            found = tier.linked(pairs, of)
            if found is None:
                raise _TierTurnedOff
            return found
        try:
            return self._document(cid, held, [], links, now or utcnow())
        except _TierTurnedOff:
            return None

    def _document(self, cid: str, events: list[dict], spans: list[dict],
                  links: Callable[[Iterable[tuple[str, str]], str], dict[tuple[str, str], list[str]]],
                  now: dt.datetime) -> dict:
        """The document from an ID's records, wherever they were read (the one place it is built)."""
        if not events and not spans:
            raise NotFound(cid)
        timeline = [self._event_item(e) for e in events] + [self._span_item(s) for s in spans]
        timeline.sort(key=lambda x: (x["at"], 0 if x["kind"] == "event" else 1))
        systems: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(timeline):
            systems[item["system"]].append(i)
        return {
            "correlation_id": cid,
            "first_seen": timeline[0]["at"], "last_seen": timeline[-1]["at"],
            "counts": {"events": len(events), "spans": len(spans), "errors": sum(x["error"] for x in timeline)},
            "journeys": self._journeys(events, now),
            "systems": {name: {"items": len(ix), "first": timeline[ix[0]]["at"], "last": timeline[ix[-1]]["at"],
                               "errors": sum(timeline[i]["error"] for i in ix), "index": ix}
                        for name, ix in sorted(systems.items())},
            "errors": [x for x in timeline if x["error"]],
            "related": self._related(cid, events, links),
            "timeline": timeline,
        }

    @staticmethod
    def _first_seen(events: list[dict]) -> dict[str, dt.datetime]:
        first: dict[str, dt.datetime] = {}
        for e in events:
            at = as_utc(e["OccurredAt"])
            if e["Type"] not in first or at < first[e["Type"]]:
                first[e["Type"]] = at
        return first

    def _journeys(self, events: list[dict], now: dt.datetime) -> list[dict]:
        """Per configured journey this ID took part in: status (the policy's rule), milestones with lags, the
        threshold, and the money of the start event (the stuck list's and attribution's amount)."""
        first = self._first_seen(events)
        out = []
        for name, j in self.journeys.items():
            steps = steps_of(j)
            if not any(s in first for s in steps):
                continue
            threshold = self.policy.threshold(name)
            milestones, prev_at = [], None
            start_at = first.get(j.start)
            for step in steps:
                at = first.get(step)
                ms: dict = {"type": step, "reached": at is not None, "at": _iso(at)}
                if at is not None:
                    ms["lag_seconds"] = (at - prev_at).total_seconds() if prev_at else 0.0
                    prev_at = at
                elif start_at is not None:
                    waited = (now - start_at).total_seconds()
                    ms["waiting_seconds"] = waited
                    if step == j.end:
                        ms["overdue_seconds"] = max(0.0, waited - threshold.total_seconds())
                milestones.append(ms)
            end_at = first.get(j.end)
            amount, currency = self._start_money(events, j.start)
            doc = {"journey": name, "status": self.policy.status(name, start_at, end_at, now),
                   "milestones": milestones, "threshold_seconds": threshold.total_seconds(),
                   "missing": [x["type"] for x in milestones if not x["reached"]],
                   "waiting_for": next((x["type"] for x in milestones if not x["reached"]), None)
                   if start_at and not end_at else None,
                   "amount": m.fmt(amount), "currency": currency}
            if start_at and end_at:
                # an end that occurred before its start (out-of-order milestones, collector.sequencing) is 0, never
                # a negative latency (the SLO decides it at the later of the two too: slo/sli.py)
                doc["total_seconds"] = max(0.0, (end_at - start_at).total_seconds())
                doc["within_threshold"] = end_at - start_at <= threshold
            out.append(doc)
        return out

    @staticmethod
    def _start_money(events: list[dict], start: str) -> tuple:
        """(amount, currency) of the journey's start event (the earliest delivery that carries an amount)."""
        for e in sorted(events, key=lambda e: as_utc(e["OccurredAt"])):
            if e["Type"] == start and m.parse_amount(e["Amount"]) is not None:
                return m.parse_amount(e["Amount"]), e["Currency"] or ""
        return None, None

    def _related(self, cid: str, events: list[dict],
                 links: Callable[[Iterable[tuple[str, str]], str], dict[tuple[str, str], list[str]]]) -> list[dict]:
        """IDs carried in this journey's attributes, with the correlation IDs they lead to (`links`: the store's
        `attribute_links`, or the tier's copy of it)."""
        pairs: dict[tuple[str, str], None] = {}
        for e in events:
            for k in LINK_ATTRIBUTES:
                v = (e["Attributes"] or {}).get(k)
                if v and v != cid:
                    pairs[(k, v)] = None
        if not pairs:
            return []
        found = links(list(pairs), cid)
        return [{"attribute": k, "value": v, "correlation_ids": found.get((k, v), [])} for k, v in pairs]

    def _links_in_tier(self, pairs: Iterable[tuple[str, str]], cid: str) -> dict[tuple[str, str], list[str]]:
        """The tier's links, or the store's when the tier turned off since it gave this lookup's events."""
        found = self.tier.linked(pairs, cid) if self.tier is not None else None
        return self._links_in_store(pairs, cid) if found is None else found

    def _links_in_store(self, pairs: Iterable[tuple[str, str]], cid: str) -> dict[tuple[str, str], list[str]]:
        """Up to RELATED_PER_VALUE other correlation IDs per (attribute, value), smallest first: a fixed answer
        whatever the parts (GROUP BY: an unmerged part may hold a link twice)."""
        pairs = list(pairs)
        keys, values = sorted({k for k, _ in pairs}), sorted({v for _, v in pairs})
        rows = self.store.query(
            f"SELECT Key, Value, CorrelationId FROM {self.store.table('attribute_links')} "
            f"WHERE Key IN {{k:Array(String)}} AND Value IN {{v:Array(String)}} AND CorrelationId != {{cid:String}} "
            f"GROUP BY Key, Value, CorrelationId ORDER BY Key, Value, CorrelationId "
            f"LIMIT {RELATED_PER_VALUE} BY Key, Value", {"k": keys, "v": values, "cid": cid}).rows
        wanted = set(pairs)
        found: dict[tuple[str, str], list[str]] = {}
        for k, v, other in rows:
            if (k, v) in wanted:
                found.setdefault((k, v), []).append(other)
        return found

    @staticmethod
    def _event_item(e: dict) -> dict:
        return {"at": _iso(e["OccurredAt"]), "kind": "event", "system": e["Source"], "name": e["Type"],
                "event_id": e["EventId"], "journey": e["Journey"] or None,
                "amount": e["Amount"] if e["Amount"] not in (None, "\\N", "") else None,
                "currency": e["Currency"] or None, "attributes": e["Attributes"],
                "error": e["Type"] in ERROR_EVENT_TYPES or e["Type"].endswith(".failed")}

    @staticmethod
    def _span_item(s: dict) -> dict:
        return {"at": _iso(s["Timestamp"]), "kind": "span", "system": s["ServiceName"] or "unknown",
                "name": s["SpanName"], "trace_id": s["TraceId"], "span_id": s["SpanId"],
                "parent_span_id": s["ParentSpanId"] or None, "span_kind": s["SpanKind"],
                "duration_ms": s["Duration"] / 1e6, "status": s["StatusCode"],
                "status_message": s["StatusMessage"] or None, "attributes": s["SpanAttributes"],
                "error": s["StatusCode"].lower().endswith("error")}

    # -- search ------------------------------------------------------------------------------------------
    def search(self, attr: tuple[str, str] | None = None, customer: str | None = None, journey: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 100) -> list[dict]:
        """Correlation IDs whose events match the filters, newest first, with a summary each."""
        where: list[str] = []
        params: dict[str, object] = {"limit": limit}
        if attr and attr[0] in LINK_ATTRIBUTES:            # point read in attribute_links, then those IDs
            ids = [r[0] for r in self.store.query(
                f"SELECT DISTINCT CorrelationId FROM {self.store.table('attribute_links')} "
                f"WHERE Key = {{k:String}} AND Value = {{v:String}} LIMIT 10000", {"k": attr[0], "v": attr[1]}).rows]
            where.append("CorrelationId IN {ids:Array(String)}")
            params["ids"] = ids + [attr[1]]                 # the value may itself be a correlation ID
        elif attr:
            where.append("(Attributes[{ak:String}] = {av:String} OR CorrelationId = {av:String})")
            params.update(ak=attr[0], av=attr[1])
        if customer:
            where.append("Attributes['customer_id'] = {cust:String}")
            params["cust"] = customer
        if journey:
            j = self.journeys.get(journey)
            types = [j.start, *j.milestones, j.end] if j else []
            where.append("(Journey = {journey:String} OR Type IN {types:Array(String)})")
            params.update(journey=journey, types=types)
        if since:
            where.append("OccurredAt >= {since:DateTime64(3, 'UTC')}")
            params["since"] = since
        if until:
            where.append("OccurredAt <= {until:DateTime64(3, 'UTC')}")
            params["until"] = until
        cond = " AND ".join(where) or "1"
        rows = self.store.query(
            f"SELECT CorrelationId, min(OccurredAt) AS first, max(OccurredAt) AS last, "
            f"groupUniqArray(Type) AS types, groupUniqArray(Source) AS systems, uniqExact(EventId) AS events "
            f"FROM {self.store.table('events')} WHERE {cond} GROUP BY CorrelationId "
            f"ORDER BY last DESC LIMIT {{limit:UInt32}}", params).dicts()
        return [{"correlation_id": r["CorrelationId"], "first_seen": _iso(r["first"]), "last_seen": _iso(r["last"]),
                 "types": sorted(r["types"]), "systems": sorted(r["systems"]), "events": r["events"]} for r in rows]

    def stuck(self, journey: str, now: dt.datetime | None = None, lookback: dt.timedelta | None = None,
              limit: int = 100) -> list[StuckInstance]:
        """Overdue instances of a journey, oldest first (`JourneyReader.stuck`)."""
        return self.reader.stuck(journey, now, lookback, limit)
