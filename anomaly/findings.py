"""Findings in the `anomalies` table: one row per change, the latest row (highest DetectedAt) per Id is the state.

Status is `open`, `acknowledged`, `resolved` or `scored`. A detector reports what it sees now for the items it
judged (`record`); a finding it no longer sees among judged items is resolved, one that reappears reopens, and an
acknowledgement survives re-scans. `scored` is a score below the detector's finding threshold (reconciliation
risk: a payment that will most likely reconcile): it stays listed with its score, but it is not an anomaly — it
counts nowhere as open and becomes `open` when a later scan scores it at or above the threshold (and back).
Rows are written only when something changed, so re-scanning the same data
writes nothing (idempotent) and the table grows with changes, not with scans. `Details` carries the finding's
explanation fields (cause, expected, billed, difference, currency, customer_id, …) plus `first_detected_at`.
Listing is keyset-paginated on (score desc, id asc): a cursor names the last item seen, so nothing is capped or
skipped silently.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from revwatch.store import Store
from revwatch.units import utcnow

STATUSES = ("open", "acknowledged", "resolved", "scored")
COLUMNS = ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details", "Status"]


def finding_id(kind: str, key: str) -> str:
    """Stable id of the finding about `key` (a correlation ID) for one detector."""
    return hashlib.sha1(f"{kind}:{key}".encode()).hexdigest()[:20]


@dataclass
class Finding:
    kind: str
    correlation_id: str
    ref: str
    score: float
    reasons: list[str]
    details: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return finding_id(self.kind, self.correlation_id)


class CursorError(ValueError):
    """A pagination cursor that this server did not hand out."""


def _latest(store: Store, where: str = "1", params: dict | None = None) -> list[dict]:
    return store.query(f"""
        SELECT {', '.join(COLUMNS)} FROM (
            SELECT * FROM {store.table('anomalies')} ORDER BY DetectedAt DESC LIMIT 1 BY Kind, Id)
        WHERE {where}""", params or {}).dicts()


def _same(row: dict, f: Finding) -> bool:
    old = {k: v for k, v in row["Details"].items()
           if k not in ("first_detected_at", "resolution", "resolved_at") and not k.startswith("acknowledged_")}
    return (round(row["Score"], 2) == round(f.score, 2) and list(row["Reasons"]) == f.reasons
            and old == f.details and row["Ref"] == f.ref)


def record(store: Store, kind: str, found: list[Finding], judged: list[str], resolution: str | dict[str, str],
           threshold: float | None = None) -> dict[str, int]:
    """Store what a detector saw; `judged` are the keys (correlation IDs) it looked at, found or not. With a
    `threshold`, a found item scored below it is kept as `scored` (listed, not an anomaly). `resolution` says why a
    finding no longer seen resolved: one sentence for all, or one per key.

    Returns counts of new, changed, reopened and resolved findings (rows written)."""
    now = utcnow()
    ids = {finding_id(kind, k) for k in judged} | {f.id for f in found}
    current = {r["Id"]: r for r in _latest(store, "Kind = {k:String}", {"k": kind})} if ids else {}
    rows, counts = [], {"new": 0, "changed": 0, "reopened": 0, "resolved": 0, "unchanged": 0}
    seen = set()
    for f in found:
        seen.add(f.id)
        old = current.get(f.id)
        at = now if old is None else max(now, old["DetectedAt"].replace(tzinfo=dt.timezone.utc)
                                          + dt.timedelta(milliseconds=1))
        details = dict(f.details)
        details["first_detected_at"] = (old["Details"].get("first_detected_at") if old else None) or now.isoformat()
        if old is not None and old["Status"] == "acknowledged":   # who acknowledged, and when, stay with the finding
            details.update({k: v for k, v in old["Details"].items() if k.startswith("acknowledged_")})
        below = threshold is not None and f.score < threshold
        if old is None:
            status, what = ("scored" if below else "open"), "new"
        elif old["Status"] == "resolved":
            status, what = ("scored" if below else "open"), "reopened"
        elif old["Status"] == "acknowledged":
            if _same(old, f):
                counts["unchanged"] += 1
                continue
            status, what = "acknowledged", "changed"
        elif _same(old, f) and (old["Status"] == "scored") == below:
            counts["unchanged"] += 1
            continue
        else:
            status, what = ("scored" if below else "open"), "changed"
        counts[what] += 1
        rows.append((f.id, kind, at, f.correlation_id, f.ref, float(f.score), f.reasons, details, status))
    for key in judged:
        fid = finding_id(kind, key)
        old = current.get(fid)
        if fid in seen or old is None or old["Status"] == "resolved":
            continue
        counts["resolved"] += 1
        at = max(now, old["DetectedAt"].replace(tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=1))
        rows.append((fid, kind, at, old["CorrelationId"], old["Ref"], old["Score"], list(old["Reasons"]),
                     {**old["Details"], "resolution": resolution if isinstance(resolution, str) else resolution[key],
                      "resolved_at": now.isoformat()}, "resolved"))
    store.insert("anomalies", rows, COLUMNS)
    return counts


def acknowledge(store: Store, fid: str, note: str = "", by: str = "") -> dict | None:
    """Mark a finding acknowledged (kept through re-scans until it resolves); None when there is no such id.
    `by` is who acknowledged: a key id, never a key."""
    rows = _latest(store, "Id = {id:String}", {"id": fid})
    if not rows:
        return None
    old = rows[0]
    if old["Status"] == "open":
        now = max(utcnow(), old["DetectedAt"].replace(tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=1))
        details = {**old["Details"], "acknowledged_at": now.isoformat()}
        if note:
            details["acknowledged_note"] = note[:500]
        if by:
            details["acknowledged_by"] = by
        store.insert("anomalies", [(old["Id"], old["Kind"], now, old["CorrelationId"], old["Ref"], old["Score"],
                                    list(old["Reasons"]), details, "acknowledged")], COLUMNS)
        old = _latest(store, "Id = {id:String}", {"id": fid})[0]
    return to_json(old)


def to_json(r: dict) -> dict:
    d = dict(r["Details"])
    return {"id": r["Id"], "kind": r["Kind"], "status": r["Status"], "score": r["Score"],
            "correlation_id": r["CorrelationId"], "ref": r["Ref"], "cause": d.get("cause", ""),
            "customer_id": d.get("customer_id", ""), "reasons": list(r["Reasons"]), "details": d,
            "first_detected_at": d.get("first_detected_at", ""),
            "detected_at": d.get("first_detected_at") or r["DetectedAt"].replace(tzinfo=dt.timezone.utc).isoformat(),
            "updated_at": r["DetectedAt"].replace(tzinfo=dt.timezone.utc).isoformat()}


# A cursor is the last item's score (IEEE 754 double, big-endian) and id (UTF-8), both in lower-case hex. Every
# string of this shape decodes, so the route can state the whole rule as a pattern in its schema: a cursor of this
# shape is always answered (a page, perhaps empty), anything else is a 400 naming `cursor`.
CURSOR_PATTERN = r"^[0-9a-f]{16}(?:[0-9a-f]{2}){0,512}$"


def encode_cursor(score: float, fid: str) -> str:
    return struct.pack(">d", score).hex() + fid.encode().hex()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """(score, id) of a cursor; CursorError when it is not of the shape CURSOR_PATTERN states."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise CursorError("cursor is not one this API handed out")
    score = struct.unpack(">d", bytes.fromhex(cursor[:16]))[0]
    if math.isnan(score):          # never handed out; ordered after every score, like the end of the list
        score = -math.inf
    return score, bytes.fromhex(cursor[16:]).decode("utf-8", "replace")


ORDERS = {"score": "Score", "money": "toFloat64OrZero(Details['money_at_risk'])"}


def list_findings(store: Store, kind: str | None = None, status: str | None = None, cause: str | None = None,
                  customer: str | None = None, since: dt.datetime | None = None, min_score: float | None = None,
                  limit: int = 100, cursor: str | None = None,
                  finding_id: str | None = None, order: str = "score") -> tuple[list[dict], str | None]:
    """One page of findings, highest score (or `order="money"`: highest money at risk, amount × probability for
    payments, the difference for invoices) first; returns (items, next cursor or None at the end)."""
    key = ORDERS[order]
    where: list[str] = ["1"]
    params: dict[str, Any] = {"limit": limit + 1}
    for col, value, name in (("Id", finding_id, "fid"), ("Kind", kind, "kind"), ("Status", status, "status"),
                             ("Details['cause']", cause, "cause"), ("Details['customer_id']", customer, "customer")):
        if value:
            where.append(f"{col} = {{{name}:String}}")
            params[name] = value
    if since is not None:
        where.append("parseDateTime64BestEffortOrZero(Details['first_detected_at'], 3, 'UTC') >= "
                     "{since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if min_score is not None:
        where.append("Score >= {min_score:Float64}")
        params["min_score"] = min_score
    if cursor:
        s, fid = decode_cursor(cursor)
        where.append(f"({key} < {{cs:Float64}} OR ({key} = {{cs:Float64}} AND Id > {{cid:String}}))")
        params.update(cs=s, cid=fid)
    rows = store.query(f"""
        SELECT {', '.join(COLUMNS)}, {key} AS OrderKey FROM (
            SELECT * FROM {store.table('anomalies')} ORDER BY DetectedAt DESC LIMIT 1 BY Kind, Id)
        WHERE {' AND '.join(where)} ORDER BY OrderKey DESC, Id ASC LIMIT {{limit:UInt32}}""", params).dicts()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1]["OrderKey"], rows[-1]["Id"]) if more and rows else None
    return [to_json(r) for r in rows], nxt


def open_counts(store: Store) -> dict[str, int]:
    """Findings still open (or acknowledged, not yet resolved) per kind, for revwatch_anomalies_open."""
    rows = store.query(f"SELECT Kind, count() FROM (SELECT Kind, Id, argMax(Status, DetectedAt) AS s "
                       f"FROM {store.table('anomalies')} GROUP BY Kind, Id) WHERE s IN ('open', 'acknowledged') "
                       f"GROUP BY Kind").rows
    return {k: int(n) for k, n in rows}
