"""Schema drift per source and event type (docs/sources.md "Schema drift"): vendors change payloads without
telling anyone; revwatch notices from the events themselves.

The learned shape of (source, type) is what its events looked like in the baseline (`baseline`, default the 7 days
before the recent window): which attributes they carry and how often, whether a field's values are numbers, the
values of low-cardinality fields (≤ 10 distinct values over ≥ 50 events) and the median amount per currency. The
recent window (default 24 h) is compared with it; a finding when

* `field_missing`   a field present in ≥ 99 % of baseline events is in < 50 % of recent ones (a rename, a drop);
* `type_changed`    a field whose baseline values were ≥ 99 % numbers is < 50 % numbers now (or the reverse);
* `new_type`        an event type the source never sent in the baseline appears;
* `new_value`       a low-cardinality field takes a value it never had (a new status, a new currency);
* `amount_scale`    the median amount per currency moved by ×50 or more either way (minor units sent as major).

Each finding names the source, type and field, carries examples (recent event ids), when it was first seen in
the window and how many events show it. Both windows need at least `min_events` events, so a quiet source is not
flagged for noise. The composition root stores findings with the anomaly findings (kind `schema_drift`): listed,
acknowledged and routed as internal alerts like every other finding, and resolved when the shape is back.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from revwatch.store import Store

KIND = "schema_drift"


@dataclass
class DriftFinding:
    """One drift observation: `key` identifies it (stable across scans while it lasts)."""
    source: str
    type: str
    what: str                      # field_missing | type_changed | new_type | new_value | amount_scale
    attribute: str                 # the field concerned ('' for new_type; the currency for amount_scale)
    reason: str
    count: int
    first_seen: dt.datetime | None
    examples: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.source}|{self.type}|{self.what}|{self.attribute}"


def _iso(t) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).isoformat()


def scan_drift(store: Store, now: dt.datetime | None = None, recent: dt.timedelta = dt.timedelta(hours=24),
               baseline: dt.timedelta = dt.timedelta(days=7), min_events: int = 20) -> tuple[list[DriftFinding],
                                                                                             list[str]]:
    """(findings, keys judged): every (source, type, kind, field) the scan could judge, so findings no longer
    seen can be resolved."""
    now = now or dt.datetime.now(dt.timezone.utc)
    split, lo = now - recent, now - recent - baseline
    t = store.table("events")
    p = {"lo": int(lo.timestamp() * 1000), "split": int(split.timestamp() * 1000), "now": int(now.timestamp() * 1000),
         "n": min_events}
    win = ("OccurredAt >= fromUnixTimestamp64Milli({lo:Int64}, 'UTC') AND "
           "OccurredAt < fromUnixTimestamp64Milli({now:Int64}, 'UTC')")
    rec = "OccurredAt >= fromUnixTimestamp64Milli({split:Int64}, 'UTC')"
    totals = {(s, ty): (b, r, first, ex) for s, ty, b, r, first, ex in store.query(
        f"SELECT Source, Type, countIf(NOT ({rec})), countIf({rec}), minIf(OccurredAt, {rec}), "
        f"groupArrayIf(3)(EventId, {rec}) FROM {t} FINAL WHERE {win} GROUP BY Source, Type", p).rows}
    out: list[DriftFinding] = []
    judged: list[str] = []
    sources_with_baseline = {s for (s, _), (b, _, _, _) in totals.items() if b >= min_events}
    for (s, ty), (b, r, first, ex) in totals.items():
        if s in sources_with_baseline:
            f = DriftFinding(s, ty, "new_type", "", "", r, first, list(ex))
            judged.append(f.key)
            if b == 0 and r > 0:
                f.reason = f"new event type {ty!r} from {s!r}: {r} event(s) in the recent window, none before"
                out.append(f)
    # fields: presence, numeric share, low-cardinality values (one pass over the attribute keys)
    rows = store.query(
        f"SELECT Source, Type, k, countIf(NOT ({rec})) AS bw, countIf({rec}) AS rw, "
        f"countIf(NOT ({rec}) AND isNotNull(toFloat64OrNull(v))) AS bnum, "
        f"countIf({rec} AND isNotNull(toFloat64OrNull(v))) AS rnum, groupUniqArrayIf(11)(v, NOT ({rec})) AS bvals, "
        f"groupUniqArrayIf(20)(v, {rec}) AS rvals "
        f"FROM {t} FINAL ARRAY JOIN mapKeys(Attributes) AS k, mapValues(Attributes) AS v WHERE {win} "
        f"GROUP BY Source, Type, k", p).rows
    present: dict[tuple[str, str], set[str]] = {}
    for s, ty, k, bw, rw, bnum, rnum, bvals, rvals in rows:
        b, r, first, ex = totals[(s, ty)]
        present.setdefault((s, ty), set()).add(k)
        if b < min_events or r < min_events:
            continue
        miss = DriftFinding(s, ty, "field_missing", k, "", r - rw, first, list(ex))
        judged.append(miss.key)
        if bw / b >= 0.99 and rw / r < 0.5:
            miss.reason = (f"{s} {ty}: field {k!r} was in {100 * bw / b:.1f} % of {b} earlier events, is in "
                           f"{100 * rw / r:.1f} % of {r} recent ones (renamed or dropped?)")
            out.append(miss)
        retyped = False
        if bw >= min_events and rw >= min_events:
            typ = DriftFinding(s, ty, "type_changed", k, "", rw, first, list(ex))
            judged.append(typ.key)
            bshare, rshare = bnum / bw, rnum / rw
            if (bshare >= 0.99 and rshare < 0.5) or (bshare <= 0.01 and rshare > 0.5):
                a, z = ("number", "text") if bshare >= 0.99 else ("text", "number")
                typ.reason = (f"{s} {ty}: field {k!r} changed from {a} ({100 * bshare:.0f} % numbers) to {z} "
                              f"({100 * rshare:.0f} % numbers)")
                out.append(typ)
                retyped = True
        if bw >= 50 and len(bvals) <= 10 and rw and not retyped:     # a retyped field's values are all "new"
            new = sorted(set(rvals) - set(bvals))
            val = DriftFinding(s, ty, "new_value", k, "", rw, first, new[:5])
            judged.append(val.key)
            if new:
                val.reason = (f"{s} {ty}: field {k!r} took new value(s) {', '.join(map(repr, new[:5]))} (before: "
                              f"{', '.join(map(repr, sorted(bvals)))})")
                out.append(val)
    # fields that vanished entirely from the recent events are in `rows` with rw = 0: handled above
    for s, ty, cur, bmed, rmed, bn, rn in store.query(
            f"SELECT Source, Type, Currency, medianIf(toFloat64(Amount), NOT ({rec})), medianIf(toFloat64(Amount), "
            f"{rec}), countIf(NOT ({rec})), countIf({rec}) FROM {t} FINAL WHERE {win} AND Amount IS NOT NULL "
            f"GROUP BY Source, Type, Currency", p).rows:
        if bn < min_events or rn < min_events or not bmed:
            continue
        _, _, first, ex = totals[(s, ty)]
        f = DriftFinding(s, ty, "amount_scale", cur, "", rn, first, list(ex))
        judged.append(f.key)
        ratio = (rmed or 0) / bmed
        if ratio >= 50 or ratio <= 0.02:
            f.reason = (f"{s} {ty}: median {cur} amount went from {bmed:g} to {rmed:g} (×{ratio:.3g}): minor units "
                        f"sent as major, or the reverse?")
            out.append(f)
    return out, judged
