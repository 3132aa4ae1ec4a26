"""The Odoo probe: business events and gauges read from Odoo 16–19's external API, in sections that degrade alone.

Sections (see `probes.odoo_schema.requirements` for the fields each reads on each version): invoices,
posting_time, payments, reconciliation, settlements, receivables, subscriptions, crons, queue_jobs. Each run
reports `section_up{section}` 1/0 per section; a missing model (checked in `ir.model` at start-up), an unknown field
(checked with `fields_get`), an access error or any other Odoo error disables that section only, with one log line
when its state changes, and the run goes on. Only a transport failure or rejected credentials fail the run.

Events (docs/events.md) have deterministic ids `odoo:<db>:<model>:<id>:<what>`, so re-reading is harmless:
* invoices: correlation id is the move itself, `odoo:<db>:account.move:<id>` — a draft has no number ('/') and no
  payment_reference (both set by `_post`, addons/account/models/account_move.py), so created and posted of one
  invoice are one journey; `invoice_ref` (name), `payment_reference` and `invoice_origin` are attributes.
* posting time: from `mail.tracking.value` on `state` (the first value whose label, compared through `fields_get`
  in every active language, is the posted state; `field` on 16, `field_id` on 17+) — attribute
  `posted_at_precision=exact`. Without it (the user may not read tracking values: base.group_system only), the
  posting is dated by the `write_date` of the poll that first sees it posted, flagged `posted_at_precision=poll`
  with `posted_after` = the previous poll; an invoice already posted before the first poll gets no lag at all: one
  `invoice.observed` event (`posted_at_precision=before_first_poll`) instead of created/posted.
* payments: correlation id from `correlation_fields` (the gateway's reference), else `odoo:<db>:account.payment:<id>`.
  Posted = move posted on 16/17 (the payment `_inherits` its move: posting bumps the move's write_date only, so the
  moves of payments are polled too), state `in_process`/`paid` on 18+.
* reconciliation: each `account.partial.reconcile` gives `payment.reconciled` at its create time, for the payment
  (or the bank statement line when no payment is involved) and for the invoice it settles.

Incremental reads use `probes.odoo_cursor.WriteDateCursor` (no stall, no loss, restart-safe); cursors and the
per-stream memory move only once the run's events are stored (`ProbeResult.on_stored`).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Callable

import httpx
from pydantic import BaseModel, ConfigDict, Field

from probes.base import Probe, ProbeResult, Sample
from probes.odoo_client import OdooClient, OdooError
from probes.odoo_cursor import CursorState, Seen, Token, WriteDateCursor, version_token
from probes.odoo_milestones import Change, current, occurrences, parse_prefix, poll_time, reached
from probes.odoo_milestones import prefix as milestone_prefix
from probes.odoo_schema import SchemaReport, check_schema

log = logging.getLogger("revwatch.probes.odoo")
ODOO_DT = "%Y-%m-%d %H:%M:%S"
INVOICE_TYPES = ["out_invoice", "out_refund"]
# canonical types per record kind (docs/events.md); a customer credit note (out_refund) is "issued" when posted
# (milestones: probes/odoo_milestones.py; `observed` is a posting seen without its time and shares the posted id)
EVENT_TYPES = {
    "invoice": {"created": "invoice.created", "posted": "invoice.posted", "observed": "invoice.observed",
                "cancelled": "invoice.cancelled", "paid": "invoice.paid", "partial": "invoice.partially_paid",
                "reversed": "invoice.reversed"},
    "credit_note": {"created": "credit_note.created", "posted": "credit_note.issued",
                    "observed": "credit_note.observed", "cancelled": "credit_note.cancelled",
                    "paid": "credit_note.paid", "partial": "credit_note.partially_paid",
                    "reversed": "credit_note.reversed"},
    "payment": {"created": "payment.created", "posted": "payment.posted", "observed": "payment.observed",
                "cancelled": "payment.cancelled"},
}
# the fields whose change makes a new version (odoo_cursor.version_token); other writes do not. `message_ids` (the
# chatter) catches a state left and re-entered within one second (posted → draft → posted: same values, same
# displayed stamp, but a new tracking message), which the tracked history then tells exactly
INVOICE_WATCHED = ["state", "payment_state", "amount_total", "amount_residual", "currency_id", "move_type", "name",
                   "message_ids"]
PAYMENT_WATCHED = ["state", "amount", "currency_id", "is_reconciled", "is_matched", "payment_type", "name",
                   "message_ids"]
SECTIONS = ("invoices", "payments", "reconciliation", "settlements", "receivables", "subscriptions", "crons",
            "queue_jobs")


def odoo_time(value) -> dt.datetime | None:
    """Odoo datetimes are UTC strings 'YYYY-MM-DD HH:MM:SS'; empty fields are False."""
    if not value:
        return None
    return dt.datetime.strptime(value[:19], ODOO_DT).replace(tzinfo=dt.timezone.utc)


def odoo_stamp(value) -> dt.datetime:
    """A datetime field Odoo always fills (write_date, create_date, nextcall, date_created): never empty."""
    at = odoo_time(value)
    if at is None:
        raise ValueError(f"an always-set Odoo datetime field is empty ({value!r})")
    return at


def parse_iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def odoo_iso(value: str | None) -> dt.datetime | None:
    return parse_iso(value) if value else None


def odoo_date(value) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def m2o_id(value) -> int | None:
    return value[0] if isinstance(value, list) and value else None


def m2o_ids(values: Iterable) -> set[int]:
    """The distinct many2one ids among `values`; empty (False) values are dropped."""
    return {i for v in values if (i := m2o_id(v)) is not None}


def m2o_name(value) -> str | None:
    return value[1] if isinstance(value, list) and len(value) == 2 else None


def chunks(ids: list, n: int):
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


@dataclass
class Polled:
    """One poll of one stream: the new versions, what was delivered before each, and the lower bound for dating."""
    rows: list[dict]
    previous: dict[int, Seen | None]
    after: dt.datetime | None          # start of the last scan cycle completed before this poll (None: none yet)
    state: CursorState                 # the cursor state to be committed (callers may record versions they read)
    token: Token


class SectionDown(Exception):
    """A section cannot run (reason in the message)."""


class OdooProbe(Probe["OdooProbe.Settings"]):
    type = "odoo"

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str
        db: str
        login: str = ""
        password: str = ""
        api_key: str = ""
        protocol: str = Field("auto", pattern="^(auto|jsonrpc|xmlrpc|json2)$")
        correlation_fields: list[str] = ["payment_reference"]   # payments: the gateway's reference (not ref/memo)
        lookback_minutes: float = Field(20, ge=0)       # > longest Odoo transaction + poll interval
        page_size: int = Field(500, ge=1, le=10000)
        max_pages: int = Field(20, ge=1)
        backfill_days: float | None = Field(None, gt=0)  # first run reads changes of the last N days (None: all)
        draft_invoice_age_hours: float = 24
        cron_grace_minutes: float = 30
        stuck_enqueued_minutes: float | None = None     # OCA default: 1 min on 16, 5 min on 17/18
        stuck_started_minutes: float = 0                # 0: not checked (OCA default on 17/18)
        aging_days: list[int] = [1, 7, 30]
        schema_recheck_minutes: float = 60
        source: str = "odoo"

    def __init__(self, name, settings, state=None):
        super().__init__(name, settings, state)
        s = settings
        self.client = OdooClient(s.url, s.db, s.login, s.password, s.api_key, s.protocol)
        self.schema: SchemaReport | None = None
        self._schema_at = 0.0
        self._cursors: dict[str, CursorState] = {}
        self._memory: dict[str, dict] = {}
        self._section_state: dict[str, str] = {}       # section -> "" when up, else the last reason logged
        self._labels: dict[tuple[str, str], dict[str, str]] = {}
        self._currencies: dict[int, str] = {}
        self._currencies_loaded = False
        # the probe's clock (poll times, seen_at); tests replace it to drive a simulated timeline
        self.clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)

    # -- persistence ------------------------------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        return self.state.get_state(f"probe:{self.name}:{key}") if self.state else None

    def _put(self, key: str, value: str) -> None:
        if self.state:
            self.state.put_state(f"probe:{self.name}:{key}", value)

    def _cursor_state(self, stream: str) -> CursorState:
        if stream not in self._cursors:
            self._cursors[stream] = CursorState.from_json(self._get(f"{stream}:cursor"))
        return self._cursors[stream]

    def _stream_memory(self, stream: str, now: dt.datetime) -> dict:
        """Per stream: when monitoring began, drafts seen open (to date their posting) and the last poll."""
        if stream not in self._memory:
            raw = self._get(f"{stream}:memory")
            self._memory[stream] = json.loads(raw) if raw else {"monitor_start": iso(now), "open": [],
                                                                "last_poll": None}
        m = self._memory[stream]
        return {"monitor_start": m["monitor_start"], "open": set(m["open"]), "last_poll": m["last_poll"]}

    def _commit_later(self, out: ProbeResult, fn: Callable[[], None]) -> None:
        out.on_stored.append(fn)

    # -- incremental reads ------------------------------------------------------------------------------------
    def poll(self, out: ProbeResult, stream: str, model: str, domain: list, fields: list[str],
             watched: list[str], milestones: str | None = None) -> Polled:
        """Versions of `model` rows (under `domain`) new since the committed cursor, with `fields`, oldest first.

        A version is identified by a token of its `watched` fields (`probes.odoo_cursor.version_token`, prefixed by
        the milestone values of `milestones`' model so the previous state can be read back), so two commits in one
        second are two versions. The scan reads the full rows: a second read could return a newer version than the
        one the token was computed from. `after` is the start of the last scan cycle that completed before this poll:
        any version not delivered by then committed after it (the lower bound of poll-dated changes)."""
        s = self.settings
        start = "1970-01-01 00:00:00"
        if s.backfill_days:
            start = (self.clock() - dt.timedelta(days=s.backfill_days)).strftime(ODOO_DT)
        cursor = WriteDateCursor(dt.timedelta(minutes=s.lookback_minutes), s.page_size, s.max_pages, start)
        names = sorted(set(fields) | set(watched) | {"id", "write_date"})

        def search(d: list, order: str, limit: int) -> list[dict]:
            return self.client.search_read(model, d + list(domain), names, order=order, limit=limit)

        def token(row: dict) -> str:
            return version_token(row, watched, milestone_prefix(milestones, row) if milestones else "")
        state = self._cursor_state(stream)
        raw = self._get(f"{stream}:cycle")
        cycle = json.loads(raw) if raw else {"started": None, "complete": None}
        now = iso(self.clock())
        started = now if state.lower is None else (cycle["started"] or now)
        outcome = cursor.poll(state, search, token)
        rows = list({r["id"]: r for r in outcome.rows}.values())          # the newest version of each id
        out.samples.append(Sample("odoo_cursor_behind", 0 if outcome.complete else 1, {"stream": stream}))
        if not outcome.complete:
            out.notes.append(f"{stream}: {outcome.pages} pages read, the scan goes on next run "
                             f"(raise page_size/max_pages if this persists)")
        after = odoo_iso(cycle["complete"])
        new_cycle = {"started": started, "complete": started if outcome.complete else cycle["complete"]}

        def commit() -> None:
            self._cursors[stream] = outcome.state
            self._put(f"{stream}:cursor", outcome.state.to_json())
            self._put(f"{stream}:cycle", json.dumps(new_cycle))
        self._commit_later(out, commit)
        return Polled(sorted(rows, key=lambda r: (r["write_date"], r["id"])), outcome.previous, after,
                      outcome.state, token)

    def read(self, model: str, ids: list[int], fields: list[str]) -> list[dict]:
        """Full records by id, oldest change first (search_read: one call per page, no capped reads)."""
        fields = sorted(set(fields) | {"write_date"})
        rows: list[dict] = []
        for part in chunks(sorted(set(ids)), self.settings.page_size):
            rows += self.client.search_read(model, [("id", "in", part)], fields, order="write_date asc, id asc")
        return sorted(rows, key=lambda r: (r.get("write_date") or "", r["id"]))

    # -- events -------------------------------------------------------------------------------------------------
    def event(self, model: str, rid: int, what: str, typ: str, cid: str, at: dt.datetime, amount=None,
              currency=None, **attrs) -> dict:
        """One §4 event; the id is deterministic (`odoo:<db>:<model>:<id>:<what>`) so re-reads are duplicates.
        Amounts keep Odoo's rounding (3 decimals for e.g. KWD), with at least 2 decimals."""
        ev = {"event_id": f"odoo:{self.settings.db}:{model}:{rid}:{what}", "type": typ, "correlation_id": cid,
              "occurred_at": iso(at), "source": self.settings.source,
              "attributes": {k: str(v) for k, v in attrs.items() if v not in (None, False, "", "/")}}
        if amount not in (None, False):
            d = Decimal(str(round(float(amount), 6)))        # no float artefacts beyond Odoo's precisions
            ev["amount"] = str(d.quantize(Decimal("0.01")) if int(d.as_tuple().exponent) > -2 else d)
            if currency:
                ev["currency"] = currency
        return ev

    def currency_code(self, currency) -> str | None:
        """ISO code of a currency given as [id, name] or a bare id (webhooks send ids); None when unknown.
        Bare ids are looked up in the `res.currency` table loaded once (and at each schema re-check)."""
        if isinstance(currency, list):
            return m2o_name(currency)
        if not isinstance(currency, int) or isinstance(currency, bool):
            return None
        if currency not in self._currencies and not self._currencies_loaded:
            self.load_currencies()
        return self._currencies.get(currency)

    def load_currencies(self) -> None:
        try:
            rows = self.client.search_read("res.currency", [], ["name"], context={"active_test": False})
        except (OdooError, httpx.HTTPError) as e:
            log.warning("odoo probe %s: cannot read currencies: %s", self.name, e)
            return
        self._currencies = {r["id"]: r["name"] for r in rows}
        self._currencies_loaded = True

    def move_cid(self, move_id: int) -> str:
        return f"odoo:{self.settings.db}:account.move:{move_id}"

    def payment_cid(self, rec: dict) -> str:
        """The gateway's reference when the payment carries one (`correlation_fields`), else the payment record
        itself. Payments made with the register-payment wizard leave `payment_reference` empty and copy the
        invoice's reference into `ref`/`memo`, so those fields must not correlate (docs/probes.md)."""
        for f in self.settings.correlation_fields:
            v = rec.get(f)
            if v and v != "/":
                return str(v)
        return f"odoo:{self.settings.db}:account.payment:{rec['id']}"

    def selection_values(self, model: str, field: str) -> dict[str, str]:
        """label -> value of `model.field`'s selection in every active language (tracking values store labels)."""
        key = (model, field)
        if key not in self._labels:
            langs = [r["code"] for r in self.client.search_read("res.lang", [("active", "=", True)], ["code"])]
            labels: dict[str, str] = {}
            for lang in langs[:20] or ["en_US"]:
                sel = self.client.fields_get(model, [field], ["selection"], lang=lang).get(field, {})
                labels.update({label: value for value, label in sel.get("selection", [])})
            self._labels[key] = labels
        return self._labels[key]

    def tracked_changes(self, out: ProbeResult, model: str, threads: dict[int, list[int]],
                        fields: list[str]) -> dict[int, list[Change]] | None:
        """Each record's tracked changes of `fields` (mail.tracking.value, values mapped back from their labels),
        given `threads` = {record id: its `message_ids`}; None when the user may not read tracking values (section
        posting_time down): callers date by poll. Looked up by message id — the index Odoo keeps on
        `mail_message_id` — so records without messages cost nothing and no join on the message's document."""
        owner = {m: rid for rid, msgs in threads.items() for m in msgs or []}
        if not owner:
            return {}                     # nothing tracked: every milestone (if any) is dated by poll

        def lookup() -> dict[int, list[Change]]:
            link = "field" if self.client.server_version()[0] == 16 else "field_id"
            changes: dict[int, list[Change]] = {}
            for name in fields:
                values = self.selection_values(model, name)
                for part in chunks(sorted(owner), self.settings.page_size):
                    tracks = self.client.search_read("mail.tracking.value", [
                        (f"{link}.name", "=", name), (f"{link}.model", "=", model), ("mail_message_id", "in", part)],
                        ["mail_message_id", "old_value_char", "new_value_char", "create_date"], order="id asc")
                    for t in tracks:
                        rid, at = owner.get(m2o_id(t["mail_message_id"]) or 0), odoo_time(t["create_date"])
                        if rid and at:
                            changes.setdefault(rid, []).append(Change(
                                name, values.get(t.get("old_value_char") or ""),
                                values.get(t.get("new_value_char") or ""), at, t["id"]))
            return changes
        return self.section(out, "posting_time", lookup)

    def _state_events(self, out: ProbeResult, kind: str, model: str, rec: dict, cid: str, prev: Seen | None,
                      changes: list[Change] | None, mem: dict, after: dt.datetime | None, now: dt.datetime,
                      amount, currency, **attrs) -> None:
        """The created and milestone events of one delivered version (probes/odoo_milestones.py): exact from the
        tracked history when readable, else by poll within [occurred_after, seen_at]; ids `…:<milestone>[:<n>]`.

        `prev` is what was delivered before (stamp, token) or None (never, or pruned from the cursor's window): an
        unknown past re-emits milestones already delivered, under the same ids (the collector keeps the first).
        A record whose journey began before monitoring started (created earlier, never seen open, no tracked
        history) gives `observed` instead of created → posted, and milestones dated `before_first_poll` on the
        first scan."""
        rid, types = rec["id"], EVENT_TYPES[kind]
        wd = odoo_stamp(rec["write_date"])
        created = odoo_time(rec.get("create_date")) or wd
        mmodel = "account.move" if kind != "payment" else "account.payment"
        before = parse_prefix(mmodel, prev[1]) if prev else None
        if before is None and rid in mem["open"]:            # delivered open (no milestone), then pruned
            before = {}
        floor = odoo_stamp(prev[0]) if prev else None
        monitor_start = parse_iso(mem["monitor_start"])
        history = occurrences("account.move" if changes is not None and kind == "payment" and
                              self.client.server_version()[0] < 18 else mmodel, changes or [])
        known = rid in mem["open"] or created >= monitor_start or bool(history)

        def emit(what: str, typ: str, at: dt.datetime, **extra) -> None:
            out.events.append(self.event(model, rid, what, typ, cid, at, amount, currency, **extra, **attrs))
        now_ms = current(mmodel, rec)
        if before is None and (not now_ms or known):
            emit("created", types["created"], created)
        for o in history:                                    # exact, from the tracked history
            second = o.at.replace(microsecond=0)
            if o.milestone in types and second <= wd and (floor is None or second >= floor):
                emit(o.suffix, types[o.milestone], o.at, precision="exact", transition=o.n if o.n > 1 else None,
                     **({"posted_at_precision": "exact"} if o.milestone == "posted" else {}))
        tracked = {o.milestone for o in history}
        for m in reached(mmodel, before, rec):               # by poll: what the previous version did not have
            if m in tracked or m not in types:
                continue
            if before is None and not known and (m == "posted" or after is None):
                typ = types["observed"] if m == "posted" else types[m]
                emit(m, typ, wd, precision="before_first_poll",
                     **({"posted_at_precision": "before_first_poll"} if m == "posted" else {}))
                continue
            lo = after or monitor_start
            extra = {"posted_at_precision": "poll", "posted_after": iso(lo)} if m == "posted" else {}
            emit(m, types[m], poll_time(wd, lo, now), precision="poll", occurred_after=iso(lo), seen_at=iso(now),
                 **extra)
        if now_ms:
            mem["open"].discard(rid)
        else:
            mem["open"].add(rid)

    def _remember(self, out: ProbeResult, stream: str, mem: dict, now: dt.datetime) -> None:
        snapshot = {"monitor_start": mem["monitor_start"], "open": sorted(mem["open"]), "last_poll": iso(now)}

        def commit() -> None:
            self._memory[stream] = snapshot
            self._put(f"{stream}:memory", json.dumps(snapshot))
        self._commit_later(out, commit)

    # -- sections: events ---------------------------------------------------------------------------------------
    def invoices(self, out: ProbeResult, now: dt.datetime) -> None:
        mem = self._stream_memory("invoices", now)
        polled = self.poll(out, "account.move", "account.move", [("move_type", "in", INVOICE_TYPES)],
                           ["name", "state", "move_type", "create_date", "amount_total", "currency_id", "company_id",
                            "partner_id", "ref", "payment_reference", "invoice_origin", "payment_state"],
                           INVOICE_WATCHED, "account.move")
        recs = polled.rows
        # every delivered version: a draft may have been posted and reset in between (its history has milestones)
        changes = self.tracked_changes(out, "account.move", {r["id"]: r.get("message_ids") or [] for r in recs},
                                       ["state", "payment_state"])
        for r in recs:
            attrs = {"invoice_ref": r.get("name"), "payment_reference": r.get("payment_reference"),
                     "invoice_origin": r.get("invoice_origin"), "ref": r.get("ref"),
                     "partner": m2o_name(r.get("partner_id")), "company": m2o_name(r.get("company_id")),
                     "payment_state": r.get("payment_state"), "move_type": r.get("move_type"), "odoo_id": r["id"]}
            kind = "credit_note" if r.get("move_type") == "out_refund" else "invoice"
            self._state_events(out, kind, "account.move", r, self.move_cid(r["id"]), polled.previous.get(r["id"]),
                               None if changes is None else changes.get(r["id"], []), mem, polled.after, now,
                               r.get("amount_total"), m2o_name(r.get("currency_id")), **attrs)
        self._remember(out, "invoices", mem, now)

    def payments(self, out: ProbeResult, now: dt.datetime) -> None:
        major = self.client.server_version()[0]
        mem = self._stream_memory("payments", now)
        fields = ["name", "state", "amount", "currency_id", "company_id", "partner_id", "payment_type",
                  "is_reconciled", "is_matched", "payment_reference", "move_id", "date", "create_date"] + \
                 (["memo"] if major >= 18 else ["ref"])
        polled = self.poll(out, "account.payment", "account.payment", [("payment_type", "=", "inbound")], fields,
                           PAYMENT_WATCHED, "account.payment")
        recs = {r["id"]: r for r in polled.rows}
        previous = dict(polled.previous)
        after = polled.after
        if major < 18:
            # 16/17: the payment `_inherits` its move; posting or cancelling writes the move only, so the moves of
            # payments are polled too and their payments re-read (then their version is the payment's as read)
            moves = self.poll(out, "account.move#payments", "account.move", [("payment_id", "!=", False)],
                              ["payment_id", "state"], ["state", "payment_id", "message_ids"])
            if moves.after and after:
                after = min(after, moves.after)
            extra = sorted({i for m in moves.rows if (i := m2o_id(m["payment_id"])) and i not in recs})
            for r in self.read("account.payment", extra, fields):
                if r.get("payment_type") != "inbound":
                    continue
                prev = polled.state.seen.get(r["id"])        # (its move changed: a new version of it)
                tok = polled.token(r)
                recs[r["id"]], previous[r["id"]] = r, prev
                if prev is not None:                          # so the payment scan does not deliver it again
                    polled.state.seen[r["id"]] = (max(prev[0], r["write_date"]), tok)
            # the payment's last change is its move's when the move changed later (posting, cancelling)
            move_rows = {m["id"]: m for m in self.read(
                "account.move", sorted(m2o_ids(r.get("move_id") for r in recs.values())), ["message_ids"])}
            for r in recs.values():
                r["write_date"] = max(r["write_date"],
                                      move_rows.get(m2o_id(r.get("move_id")) or 0, {}).get("write_date", ""))
            by_move = self.tracked_changes(out, "account.move", {i: m.get("message_ids") or []
                                                                 for i, m in move_rows.items()}, ["state"])
            changes = None if by_move is None else {
                r["id"]: by_move.get(m2o_id(r.get("move_id")) or 0, []) for r in recs.values()}
        else:
            changes = self.tracked_changes(out, "account.payment",
                                           {i: r.get("message_ids") or [] for i, r in recs.items()}, ["state"])
        for r in sorted(recs.values(), key=lambda r: (r["write_date"], r["id"])):
            attrs = {"payment_ref": r.get("name"), "payment_reference": r.get("payment_reference"),
                     "memo": r.get("memo") or r.get("ref"), "partner": m2o_name(r.get("partner_id")),
                     "company": m2o_name(r.get("company_id")), "payment_date": r.get("date"),
                     "is_matched": r.get("is_matched"), "odoo_id": r["id"]}
            self._state_events(out, "payment", "account.payment", r, self.payment_cid(r), previous.get(r["id"]),
                               None if changes is None else changes.get(r["id"], []), mem, after, now,
                               r.get("amount"), m2o_name(r.get("currency_id")), **attrs)
        self._remember(out, "payments", mem, now)

    def reconciliation(self, out: ProbeResult, now: dt.datetime) -> None:
        """payment.reconciled per partial reconciliation, for the settling side and for the invoice."""
        parts = self.poll(out, "account.partial.reconcile", "account.partial.reconcile", [],
                          ["debit_move_id", "credit_move_id", "amount", "max_date", "company_id",
                           "company_currency_id", "create_date"],
                          ["debit_move_id", "credit_move_id", "amount"]).rows
        if not parts:
            return
        line_ids = m2o_ids(p[k] for p in parts for k in ("debit_move_id", "credit_move_id"))
        lines = {r["id"]: r for r in self.read("account.move.line", sorted(line_ids), ["move_id", "payment_id"])}
        move_ids = m2o_ids(r["move_id"] for r in lines.values())
        moves = {r["id"]: r for r in self.read("account.move", sorted(move_ids),
                                               ["name", "move_type", "statement_line_id", "payment_reference"])}
        pay_ids = m2o_ids(r["payment_id"] for r in lines.values())
        major = self.client.server_version()[0]
        pay_fields = ["name", "date", "payment_reference"] + (["memo"] if major >= 18 else ["ref"])
        pays = {r["id"]: r for r in self.read("account.payment", sorted(pay_ids), pay_fields)}
        st_ids = m2o_ids(m.get("statement_line_id") for m in moves.values())
        st_lines = {r["id"]: r for r in self.read("account.bank.statement.line", sorted(st_ids),
                                                  ["date", "payment_ref"])}
        for p in parts:
            sides: list[dict] = [s for k in ("debit_move_id", "credit_move_id") if (s := lines.get(m2o_id(p[k])))]
            settle = next((s for s in sides if m2o_id(s.get("payment_id")) in pays), None)
            if settle is None:
                settle = next((s for s in sides if moves.get(m2o_id(s["move_id"]), {}).get("statement_line_id")),
                              None)
            invoice = next((moves[m2o_id(s["move_id"])] for s in sides if s is not settle
                            and moves.get(m2o_id(s["move_id"]), {}).get("move_type") in INVOICE_TYPES), None)
            at = odoo_time(p.get("create_date")) or odoo_stamp(p["write_date"])
            cur = m2o_name(p.get("company_currency_id"))
            attrs = {"max_date": p.get("max_date"), "company": m2o_name(p.get("company_id")), "partial_id": p["id"]}
            if invoice:
                attrs.update(invoice_ref=invoice.get("name"), invoice_correlation_id=self.move_cid(invoice["id"]))
            if settle is not None and m2o_id(settle.get("payment_id")) in pays:
                pay = pays[m2o_id(settle["payment_id"])]
                cid = self.payment_cid(pay)
                attrs.update(payment_ref=pay.get("name"), payment_date=pay.get("date"))
            elif settle is not None:
                st_line = m2o_id(moves[m2o_id(settle["move_id"])]["statement_line_id"])
                cid = f"odoo:{self.settings.db}:account.bank.statement.line:{st_line}"
                attrs.update(statement_line_id=st_line, settlement_date=st_lines.get(st_line, {}).get("date"),
                             bank_ref=st_lines.get(st_line, {}).get("payment_ref"))
            else:
                cid = None
            if cid:
                out.events.append(self.event("account.partial.reconcile", p["id"], "reconciled",
                                             "payment.reconciled", cid, at, p.get("amount"), cur, **attrs))
            if invoice:
                out.events.append(self.event("account.partial.reconcile", p["id"], "invoice",
                                             "payment.reconciled", self.move_cid(invoice["id"]), at, p.get("amount"),
                                             cur, settled_by=cid, **attrs))

    # -- sections: gauges ---------------------------------------------------------------------------------------
    def _per_company_currency(self, out: ProbeResult, model: str, domain: list, amount_field: str, count_name: str,
                              amount_name: str) -> None:
        for row in self.client.group(model, domain, ["company_id", "currency_id"], [amount_field]):
            labels = {"company": m2o_name(row["company_id"]) or "", "currency": m2o_name(row["currency_id"]) or ""}
            out.samples.append(Sample(count_name, row["__count"], labels))
            out.samples.append(Sample(amount_name, round(float(row[amount_field] or 0), 2), labels))

    def _aging(self, out: ProbeResult, model: str, domain: list, date_field: str, name: str,
               now: dt.datetime) -> None:
        """Counts per age bucket (`le_days`) plus the oldest age, on a date field."""
        edges = sorted(set(self.settings.aging_days))
        prev = None
        for days in edges + [None]:
            d = list(domain)
            if days is not None:
                d.append((date_field, ">", (now - dt.timedelta(days=days)).strftime("%Y-%m-%d")))
            if prev is not None:
                d.append((date_field, "<=", (now - dt.timedelta(days=prev)).strftime("%Y-%m-%d")))
            out.samples.append(Sample(name, self.client.search_count(model, d),
                                      {"le_days": str(days) if days is not None else "+Inf"}))
            prev = days
        oldest = self.client.search_read(model, domain, [date_field], order=f"{date_field} asc, id asc", limit=1)
        age = (now - day).total_seconds() if oldest and (day := odoo_date(oldest[0][date_field])) else 0
        out.samples.append(Sample(f"{name}_oldest_age_seconds", age))

    def settlements(self, out: ProbeResult, now: dt.datetime) -> None:
        """Money received but not matched: payments not matched with a bank line, unreconciled statement lines."""
        major = self.client.server_version()[0]
        unmatched = ([("state", "=", "in_process")] if major >= 18 else
                     [("state", "=", "posted"), ("is_matched", "=", False)])
        unmatched = [("payment_type", "=", "inbound")] + unmatched
        self._per_company_currency(out, "account.payment", unmatched, "amount", "odoo_unmatched_payments",
                                   "odoo_unmatched_payments_amount")
        self._aging(out, "account.payment", unmatched, "date", "odoo_unmatched_payments_aged", now)
        lines = [("is_reconciled", "=", False)]
        self._per_company_currency(out, "account.bank.statement.line", lines, "amount_residual",
                                   "odoo_unreconciled_lines", "odoo_unreconciled_amount")
        self._aging(out, "account.bank.statement.line", lines, "date", "odoo_unreconciled_lines_aged", now)

    def receivables(self, out: ProbeResult, now: dt.datetime) -> None:
        s = self.settings
        open_ = [("move_type", "=", "out_invoice"), ("state", "=", "posted"),
                 ("payment_state", "in", ["not_paid", "partial"])]
        self._per_company_currency(out, "account.move", open_, "amount_residual", "odoo_receivables_open",
                                   "odoo_receivables_amount")
        old = (now - dt.timedelta(hours=s.draft_invoice_age_hours)).strftime(ODOO_DT)
        out.samples.append(Sample("odoo_draft_invoices_old", self.client.search_count(
            "account.move", [("move_type", "=", "out_invoice"), ("state", "=", "draft"), ("create_date", "<", old)]),
            {"older_than_hours": f"{s.draft_invoice_age_hours:g}"}))

    def subscriptions(self, out: ProbeResult, now: dt.datetime) -> None:
        active = ([("stage_category", "=", "progress")] if self.client.server_version()[0] == 16 else
                  [("subscription_state", "in", ["3_progress", "4_paused"])])
        out.samples.append(Sample("odoo_subscriptions_overdue_invoicing", self.client.search_count(
            "sale.order", [("is_subscription", "=", True), ("next_invoice_date", "<", now.strftime("%Y-%m-%d"))]
            + active)))

    def crons(self, out: ProbeResult, now: dt.datetime) -> None:
        late = (now - dt.timedelta(minutes=self.settings.cron_grace_minutes)).strftime(ODOO_DT)
        domain = [("active", "=", True), ("nextcall", "<", late)]
        out.samples.append(Sample("odoo_cron_late", self.client.search_count("ir.cron", domain)))
        first = self.client.search_read("ir.cron", domain, ["nextcall"], order="nextcall asc", limit=1)
        out.samples.append(Sample("odoo_cron_max_lateness_seconds",
                                  (now - odoo_stamp(first[0]["nextcall"])).total_seconds() if first else 0))

    def queue_jobs(self, out: ProbeResult, now: dt.datetime) -> None:
        """OCA queue_job (`queue_job/job.py` STATES; the model has no write_date: `_log_access = False`)."""
        c = self.client
        counts = c.count_by("queue.job", [("state", "!=", "done")], "state")
        for state in ("wait_dependencies", "pending", "enqueued", "started", "failed", "cancelled"):
            out.samples.append(Sample("odoo_queue_jobs", counts.get(state, 0), {"state": state}))
        # pending age = now − max(date_created, eta): jobs without eta by creation, due jobs with eta by eta
        stamp = now.strftime(ODOO_DT)
        ages = []
        plain = c.search_read("queue.job", [("state", "=", "pending"), ("eta", "=", False)], ["date_created"],
                              order="date_created asc", limit=1)
        if plain:
            ages.append(now - odoo_stamp(plain[0]["date_created"]))
        due = c.search_read("queue.job", [("state", "=", "pending"), ("eta", "!=", False), ("eta", "<=", stamp)],
                            ["date_created", "eta"], order="eta asc", limit=1)
        if due:
            ages.append(now - max(odoo_stamp(due[0]["date_created"]), odoo_stamp(due[0]["eta"])))
        out.samples.append(Sample("odoo_queue_job_oldest_pending_age_seconds",
                                  max(ages).total_seconds() if ages else 0))
        # stuck jobs as OCA's requeue_stuck_jobs sees them (queue_job/models/queue_job.py _get_stuck_jobs_domain)
        enq = self.settings.stuck_enqueued_minutes
        if enq is None:
            enq = 1 if c.server_version()[0] == 16 else 5
        for state, field, minutes in (("enqueued", "date_enqueued", enq),
                                      ("started", "date_started", self.settings.stuck_started_minutes)):
            if minutes:
                limit = (now - dt.timedelta(minutes=minutes)).strftime(ODOO_DT)
                out.samples.append(Sample("odoo_queue_jobs_stuck", c.search_count(
                    "queue.job", [("state", "=", state), (field, "<=", limit)]), {"state": state}))

    # -- running ------------------------------------------------------------------------------------------------
    def section(self, out: ProbeResult, name: str, fn: Callable[[], object]):
        """Run one section: `section_up{section}` 1, or 0 with one log line per change of reason."""
        reason = self.schema.disabled.get(name) if self.schema else None
        result = None
        if reason is None:
            try:
                result = fn()
            except OdooError as e:
                if e.auth_error or e.gated:
                    raise                                  # credentials / endpoint: the whole run fails
                kind = ("access denied" if e.access_error else "model missing" if e.missing_model else
                        "unknown field" if e.invalid_field else "error")
                reason = f"{kind}: {e.name}: {e.message.splitlines()[0][:300] if e.message else ''}"
                if e.access_error:
                    reason += f" ({self._access_hint(name)})"
        up = reason is None
        out.samples.append(Sample("section_up", 1 if up else 0, {"section": name}))
        if not up and f"section {name} down: {reason}" not in out.notes:
            out.notes.append(f"section {name} down: {reason}")
            if self._section_state.get(name) != reason:
                log.warning("odoo probe %s: section %s down: %s", self.name, name, reason)
        elif self._section_state.get(name):
            log.info("odoo probe %s: section %s is back", self.name, name)
        self._section_state[name] = "" if up else (reason or "")
        return result

    @staticmethod
    def _access_hint(section: str) -> str:
        return {"queue_jobs": "the API user needs the group queue_job.group_queue_job_manager (Job Queue Manager)",
                "crons": "ir.cron is readable by base.group_system (Settings) only",
                "posting_time": "mail.tracking.value is readable by base.group_system only; postings are then "
                                "dated by poll"}.get(section, "grant the API user read access to this model")

    def ensure_schema(self) -> None:
        due = time.monotonic() - self._schema_at > self.settings.schema_recheck_minutes * 60
        if self.schema is None or due:
            major = self.client.server_version()
            self.schema = check_schema(self.client, major[0], ".".join(str(x) for x in major))
            self._schema_at = time.monotonic()
            self._labels.clear()
            self.load_currencies()

    def run(self, sections: tuple[str, ...] = SECTIONS) -> ProbeResult:
        """One run of `sections` (all by default; tests and benches pick the event sections)."""
        out = ProbeResult()
        now = self.clock()
        self.ensure_schema()
        for name in sections:
            self.section(out, name, partial(getattr(self, name), out, now))
        out.samples.append(Sample("odoo_server_version", float(self.client.server_version()[0]),
                                  {"protocol": self.client.protocol}))
        return out
