"""The Odoo probe: business events and gauges read from Odoo's external API.

Incremental polling: each model is read with a cursor on `write_date` — rows of a later second, or of the
cursor's second whose ids were not yet seen, ordered `write_date asc, id asc` — so rows committed in the same
second are neither lost nor repeated (even one committed late into a second already read), and the cursor lives
in the store (restart-safe). Events get deterministic ids
(`odoo:<db>:<model>:<id>:<what>`), so a re-poll after a crash is a duplicate the collector drops.

Posting time: account.move has no "posted at" field. The probe takes the `write_date` of the first poll that sees
`state = posted` as the posting time; an invoice edited after posting but before revwatch first saw it is dated
by that later edit (the tracked-state history in mail.tracking.value is not read).

Versions: payments have their own state from 18 (`in_process`, `paid`; may have no journal entry) while on 16/17
a payment's state is its move's; subscriptions use `stage_category` on 16 and `subscription_state` on 17+;
aggregation is `read_group` on 16–18 and `formatted_read_group` on 19. `queue.job` (OCA queue_job) is readable
only by its manager group: an AccessError is reported as a note, the rest of the probe goes on.
"""
from __future__ import annotations

import datetime as dt
import json

from pydantic import BaseModel, ConfigDict, Field

from probes.base import Probe, ProbeResult, Sample
from probes.odoo_client import OdooClient, OdooError

ODOO_DT = "%Y-%m-%d %H:%M:%S"


def odoo_time(value) -> dt.datetime | None:
    """Odoo datetimes are UTC strings 'YYYY-MM-DD HH:MM:SS'; empty fields are False."""
    if not value:
        return None
    return dt.datetime.strptime(value[:19], ODOO_DT).replace(tzinfo=dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class OdooProbe(Probe):
    type = "odoo"

    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str
        db: str
        login: str = ""
        password: str = ""
        api_key: str = ""
        protocol: str = Field("auto", pattern="^(auto|jsonrpc|xmlrpc|json2)$")
        correlation_fields: list[str] = ["payment_reference", "ref", "invoice_origin", "memo", "name"]
        page_size: int = Field(500, ge=1, le=10000)
        max_pages: int = Field(20, ge=1)
        draft_invoice_age_hours: float = 24
        cron_grace_minutes: float = 30
        source: str = "odoo"

    def __init__(self, name, settings, state=None):
        super().__init__(name, settings, state)
        s = settings
        self.client = OdooClient(s.url, s.db, s.login, s.password, s.api_key, s.protocol)

    # -- cursors --------------------------------------------------------------------------------------------
    def _cursor_key(self, model: str) -> str:
        return f"probe:{self.name}:{model}:cursor"

    def _load_cursor(self, model: str) -> dict:
        raw = self.state.get_state(self._cursor_key(model)) if self.state else None
        return json.loads(raw) if raw else {"ts": "1970-01-01 00:00:00", "ids": []}

    def _save_cursor(self, model: str, cursor: dict) -> None:
        if self.state:
            self.state.put_state(self._cursor_key(model), json.dumps(cursor))

    def poll(self, model: str, domain: list, fields: list[str]) -> list[dict]:
        """Records of `model` changed since the stored cursor (keyset on write_date, id), oldest first."""
        cursor = self._load_cursor(model)
        seen_at_ts = set(cursor["ids"])
        out: list[dict] = []
        fields = sorted(set(fields) | {"id", "write_date"})
        for _ in range(self.settings.max_pages):
            # later second, or the cursor's second but not yet seen: exact even for rows committed late into a
            # second already read (a strict (write_date, id) keyset would skip a lower id arriving later)
            keyset = ["|", ("write_date", ">", cursor["ts"]), "&", ("write_date", "=", cursor["ts"]),
                      ("id", "not in", sorted(seen_at_ts))]
            page = self.client.search_read(model, keyset + list(domain), fields,
                                           order="write_date asc, id asc", limit=self.settings.page_size)
            out += page
            if page:
                last = page[-1]["write_date"]
                same = {r["id"] for r in page if r["write_date"] == last}
                seen_at_ts = (seen_at_ts | same) if last == cursor["ts"] else same
                cursor = {"ts": last, "ids": sorted(seen_at_ts)}
            if len(page) < self.settings.page_size:
                break
        self._save_cursor(model, cursor)
        return out

    # -- event derivation -----------------------------------------------------------------------------------
    def _cid(self, rec: dict) -> str:
        for f in self.settings.correlation_fields:
            v = rec.get(f)
            if v:
                return str(v)
        return f"odoo:{rec.get('id')}"

    def _event(self, model: str, rec: dict, what: str, typ: str, at: dt.datetime, amount=None, currency=None,
               **attrs) -> dict:
        ev = {"event_id": f"odoo:{self.settings.db}:{model}:{rec['id']}:{what}", "type": typ,
              "correlation_id": self._cid(rec), "occurred_at": iso(at), "source": self.settings.source,
              "attributes": {k: str(v) for k, v in attrs.items() if v not in (None, False, "")}}
        if amount not in (None, False):
            ev["amount"] = f"{float(amount):.2f}"
            if currency:
                ev["currency"] = currency
        return ev

    @staticmethod
    def _m2o_name(value) -> str | None:
        return value[1] if isinstance(value, list) and len(value) == 2 else None

    def invoices(self, out: ProbeResult) -> None:
        recs = self.poll("account.move", [("move_type", "in", ["out_invoice", "out_refund"])],
                         ["name", "state", "move_type", "create_date", "amount_total", "currency_id", "partner_id",
                          "ref", "payment_reference", "invoice_origin", "payment_state"])
        for r in recs:
            attrs = {"invoice_ref": r.get("name") or None, "partner": self._m2o_name(r.get("partner_id")),
                     "payment_state": r.get("payment_state"), "odoo_id": r["id"]}
            cur = self._m2o_name(r.get("currency_id"))
            created = odoo_time(r.get("create_date")) or odoo_time(r["write_date"])
            out.events.append(self._event("account.move", r, "created", "invoice.created", created,
                                          r.get("amount_total"), cur, **attrs))
            if r.get("state") == "posted":
                out.events.append(self._event("account.move", r, "posted", "invoice.posted",
                                              odoo_time(r["write_date"]), r.get("amount_total"), cur, **attrs))

    def payments(self, out: ProbeResult) -> None:
        major = self.client.server_version()[0]
        fields = ["name", "state", "amount", "currency_id", "partner_id", "payment_type", "is_reconciled",
                  "is_matched", "payment_reference"] + (["memo"] if major >= 18 else ["ref"])
        recs = self.poll("account.payment", [("payment_type", "=", "inbound")], fields)
        posted_states = {"in_process", "paid"} if major >= 18 else {"posted"}
        for r in recs:
            cur = self._m2o_name(r.get("currency_id"))
            attrs = {"payment_ref": r.get("name") or None, "partner": self._m2o_name(r.get("partner_id")),
                     "odoo_id": r["id"]}
            at = odoo_time(r["write_date"])
            if r.get("state") in posted_states:
                out.events.append(self._event("account.payment", r, "posted", "payment.posted", at, r.get("amount"),
                                              cur, **attrs))
            if r.get("is_reconciled") or (major >= 18 and r.get("state") == "paid"):
                out.events.append(self._event("account.payment", r, "reconciled", "payment.reconciled", at,
                                              r.get("amount"), cur, **attrs))

    # -- gauges ---------------------------------------------------------------------------------------------
    def gauges(self, out: ProbeResult, now: dt.datetime) -> None:
        c, s = self.client, self.settings
        old = (now - dt.timedelta(hours=s.draft_invoice_age_hours)).strftime(ODOO_DT)
        out.samples.append(Sample("odoo_draft_invoices_old", c.search_count(
            "account.move", [("move_type", "=", "out_invoice"), ("state", "=", "draft"), ("create_date", "<", old)]),
            {"older_than_hours": f"{s.draft_invoice_age_hours:g}"}))
        lines = c.search_read("account.bank.statement.line", [("is_reconciled", "=", False)],
                              ["amount", "date"], order="date asc", limit=10000)
        out.samples.append(Sample("odoo_unreconciled_lines", len(lines)))
        out.samples.append(Sample("odoo_unreconciled_amount", round(sum(abs(x["amount"]) for x in lines), 2)))
        if lines:
            oldest = dt.datetime.strptime(lines[0]["date"], "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
            out.samples.append(Sample("odoo_unreconciled_oldest_age_seconds", (now - oldest).total_seconds()))
        major = c.server_version()[0]
        today = now.strftime("%Y-%m-%d")
        active = ([("stage_category", "=", "progress")] if major == 16 else
                  [("subscription_state", "in", ["3_progress", "4_paused"])])
        try:
            out.samples.append(Sample("odoo_subscriptions_overdue_invoicing", c.search_count(
                "sale.order", [("is_subscription", "=", True), ("next_invoice_date", "<", today)] + active)))
        except OdooError as e:
            out.notes.append(f"subscriptions not readable ({e.name}): is sale_subscription installed?")
        late = (now - dt.timedelta(minutes=s.cron_grace_minutes)).strftime(ODOO_DT)
        crons = c.search_read("ir.cron", [("active", "=", True), ("nextcall", "<", late)], ["nextcall", "cron_name"],
                              order="nextcall asc", limit=100)
        out.samples.append(Sample("odoo_cron_late", len(crons)))
        if crons:
            out.samples.append(Sample("odoo_cron_max_lateness_seconds",
                                      (now - odoo_time(crons[0]["nextcall"])).total_seconds()))
        self.queue_jobs(out, now)

    def queue_jobs(self, out: ProbeResult, now: dt.datetime) -> None:
        c = self.client
        try:
            counts = c.count_by("queue.job", [("state", "in", ["pending", "enqueued", "started", "failed",
                                                                "wait_dependencies"])], "state")
        except OdooError as e:
            if e.access_error:
                out.notes.append("queue.job is not readable: the API user needs the group "
                                 "queue_job.group_queue_job_manager (Job Queue Manager)")
            elif "does not exist" in e.message or e.status == 404 or "KeyError" in e.name:
                out.notes.append("queue.job not found: OCA queue_job is not installed")
            else:
                raise
            return
        for state in ("pending", "enqueued", "started", "failed", "wait_dependencies"):
            out.samples.append(Sample("odoo_queue_jobs", counts.get(state, 0), {"state": state}))
        oldest = c.search_read("queue.job", [("state", "=", "pending")], ["date_created"], order="date_created asc",
                               limit=1)
        out.samples.append(Sample("odoo_queue_job_oldest_pending_age_seconds",
                                  (now - odoo_time(oldest[0]["date_created"])).total_seconds() if oldest else 0))

    def run(self) -> ProbeResult:
        out = ProbeResult()
        now = dt.datetime.now(dt.timezone.utc)
        self.invoices(out)
        self.payments(out)
        self.gauges(out, now)
        out.samples.append(Sample("odoo_server_version", float(self.client.server_version()[0]),
                                  {"protocol": self.client.protocol}))
        return out
