"""An incremental cursor over Odoo's `write_date` that can neither stall nor lose rows.

Why a plain keyset cursor is not enough (odoo/odoo `odoo/sql_db.py` `Cursor.now()`, `odoo/models.py`
`_write`/`_create`, `odoo/fields.py` `Datetime.to_string`):

* `write_date` is the *start* time of the writing transaction (`Cursor.now()`, `now() at time zone 'UTC'`), stored
  with microseconds but shown over the external API cut to whole seconds. Every row of one transaction carries the
  same stamp, so a cron that writes thousands of rows makes a block larger than any page.
* A transaction becomes visible when it *commits*, possibly minutes after its stamp: a long transaction shows up
  "in the past", behind a cursor that has already moved on.
* A domain term `write_date = 'S'` compares with a microsecond stamp and matches nothing, while `> 'S'` still
  matches the rows of second S: keysets built from the displayed seconds either stall or repeat.

The invariants kept here:

* Every scan cycle starts at `lower = floor_second(high_water) − lookback`, where `high_water` is the highest
  stamp read so far. A row committed at C with stamp W is seen by the first cycle that starts after C provided
  `C − W + cycle duration ≤ lookback` — i.e. lookback must exceed the longest transaction plus the poll interval.
* Within a cycle, rows are read in `(second(write_date), id)` order: a page ordered by `write_date, id`; the last
  (possibly partial) second of a full page is then finished on its own, ordered by id (`id > last`), so a block of
  any size in one second is paged through and never stalls.
* A record *version* is identified by its stamp and, when the caller gives a `token` function, by a token of the
  fields it watches (`version_token`: a short digest of their values, optionally prefixed by readable parts such as
  the state). The stamp alone cannot do it: two commits in one second (`create` then `action_post`, the ordinary
  integration pattern) share the displayed stamp, so a poll that read the draft would never deliver the posted
  version. With a token, a row is new when its id was not seen or its token differs from the one delivered; a
  newer stamp with the same token (a change of a field nobody watches: a note, "sent") is not a new version. Without
  a token, a row is new when its stamp is newer (a record's stamp only grows: Odoo runs REPEATABLE READ, so two
  transactions cannot both write one row).
* The seen map `{id: (write_date, token)}` is pruned of stamps below the cycle's lower bound: the scan can never
  return them again, so its size is bounded by the rows changed within lookback + one cycle. A record that comes
  back after its entry was pruned is delivered again: callers make that harmless with deterministic event ids
  (the collector keeps the first copy of an id).
* A cycle cut short by the page budget resumes where it stopped on the next poll, with the same lower bound.
* The state is plain JSON; callers persist it only after the rows it covers are safely handed over (so a crash
  re-reads and re-delivers, and deterministic event ids make re-delivery harmless).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

ODOO_DT = "%Y-%m-%d %H:%M:%S"
EPOCH = "1970-01-01 00:00:00"

Search = Callable[[list, str, int], list[dict]]      # (domain, order, limit) -> rows with id and write_date
Token = Callable[[dict], str]                        # a scanned row -> the identity of its watched fields
Seen = tuple[str, str | None]                        # (write_date, token); token None = unknown (older state)


def version_token(row: dict, fields: list[str], prefix: str = "") -> str:
    """`prefix` + a 64-bit digest of `row`'s values of `fields` (as the API returns them; many2one as ids only,
    so a renamed partner is not a new version of the invoice). Bounded: ≤ len(prefix) + 17 characters."""
    values = [(f, v[0] if isinstance(v, list) and v else v) for f in fields if (v := row.get(f, None)) is not None]
    digest = hashlib.blake2b(json.dumps(values, separators=(",", ":"), default=str).encode(), digest_size=8)
    return f"{prefix}#{digest.hexdigest()}"


def shift(stamp: str, seconds: float) -> str:
    """A second-resolution Odoo stamp moved by `seconds` (never before the epoch)."""
    t = dt.datetime.strptime(stamp[:19], ODOO_DT) + dt.timedelta(seconds=seconds)
    return max(t.strftime(ODOO_DT), EPOCH)


@dataclass
class CursorState:
    """What survives between polls (and restarts): see the module docstring for the invariants."""
    high_water: str | None = None                         # highest write_date read, 'YYYY-MM-DD HH:MM:SS'
    seen: dict[int, Seen] = field(default_factory=dict)   # id -> (newest write_date read, token delivered)
    lower: str | None = None                              # lower bound of the cycle in progress
    resume: tuple[str, int] | None = None                 # (second, id) reached by an unfinished cycle
    cycles: int = 0                                       # completed cycles (0 = the first backfill is running)

    def to_json(self) -> str:
        return json.dumps({"high_water": self.high_water,
                           "seen": [[k, w, t] for k, (w, t) in sorted(self.seen.items())],
                           "lower": self.lower, "resume": list(self.resume) if self.resume else None,
                           "cycles": self.cycles}, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> CursorState:
        if not raw:
            return cls()
        d = json.loads(raw)
        if "high_water" not in d:                          # state written by the earlier (ts, ids) cursor
            return cls(high_water=d.get("ts"))
        # entries [id, stamp] of the stamp-only cursor have no token: their next version is delivered once more
        seen = {int(e[0]): (e[1], e[2] if len(e) > 2 else None) for e in d["seen"]}
        return cls(high_water=d["high_water"], seen=seen, lower=d["lower"],
                   resume=tuple(d["resume"]) if d["resume"] else None, cycles=d.get("cycles", 0))


@dataclass
class PollOutcome:
    rows: list[dict]           # new or changed rows (as returned by the scan), oldest first
    previous: dict[int, Seen | None]   # per delivered id: what had been delivered before (None: never, or pruned)
    state: CursorState         # the state to persist once `rows` are handed over
    complete: bool             # False when the page budget ran out (the cycle resumes next poll)
    pages: int


class WriteDateCursor:
    """Scans one model (under one extra domain) with the invariants above."""

    def __init__(self, lookback: dt.timedelta, page_size: int, max_pages: int, start: str = EPOCH):
        if lookback.total_seconds() < 0 or page_size < 1 or max_pages < 1:
            raise ValueError("lookback ≥ 0, page_size ≥ 1 and max_pages ≥ 1 are required")
        self.lookback, self.page_size, self.max_pages, self.start = lookback, page_size, max_pages, start

    def poll(self, state: CursorState, search: Search, token: Token | None = None) -> PollOutcome:
        """One poll: the versions new since `state` (see the module docstring); `state` itself is not changed."""
        st = CursorState(state.high_water, dict(state.seen), state.lower, state.resume, state.cycles)
        if st.lower is None:                                # a new cycle
            st.lower = (shift(st.high_water, -self.lookback.total_seconds()) if st.high_water
                        else self.start)
            st.resume = None
        st.seen = {i: e for i, e in st.seen.items() if e[0] >= st.lower}
        rows: list[dict] = []
        previous: dict[int, Seen | None] = {}
        pages = 0
        second, last_id = st.resume if st.resume and st.resume[1] >= 0 else (None, 0)

        def take(page: list[dict]) -> None:
            for r in page:
                w, rid = r["write_date"], r["id"]
                prev = st.seen.get(rid)
                tok = token(r) if token else None
                if prev is not None and w < prev[0]:
                    continue                                # an older version than one already read
                if prev is None or (tok != prev[1] if token else w > prev[0]):
                    if rid not in previous:
                        previous[rid] = prev
                    rows.append(r)
                st.seen[rid] = (w, tok)
                if st.high_water is None or w > st.high_water:
                    st.high_water = w

        floor = st.lower
        if st.resume and st.resume[1] < 0:                 # an unfinished cycle stopped at a page start
            floor, second = st.resume[0], None
        while pages < self.max_pages:
            pages += 1
            if second is not None:                          # finish one second, ordered by id
                domain = [("write_date", ">=", second), ("write_date", "<", shift(second, 1)),
                          ("id", ">", last_id)]
                page = search(domain, "id asc", self.page_size)
                take(page)
                if len(page) == self.page_size:
                    last_id = page[-1]["id"]
                else:
                    floor, second, last_id = shift(second, 1), None, 0
                continue
            page = search([("write_date", ">=", floor)], "write_date asc, id asc", self.page_size)
            take(page)
            if len(page) < self.page_size:                  # everything from `floor` on has been read
                st.cycles += 1
                st.lower, st.resume = None, None
                return PollOutcome(rows, previous, st, True, pages)
            second, last_id = page[-1]["write_date"][:19], 0   # its last second may be partial: finish it
        # budget spent: go on next poll from (second, id), or from a page start marked (floor, -1)
        st.resume = (second, last_id) if second is not None else (floor, -1)
        return PollOutcome(rows, previous, st, False, pages)
