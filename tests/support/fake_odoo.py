"""A test double of an Odoo 16/17/18/19 server (no real Odoo can run here), built to behave as Odoo does, version by
version, for everything revwatch's probe touches. Each behaviour names the upstream file it follows (odoo/odoo
branches 16.0–19.0, OCA/queue 16.0–18.0); nothing is copied from them.

Storage and time
* `write_date`/`create_date` are the writing transaction's *start* time with microseconds (`odoo/sql_db.py`
  `Cursor.now()`; `odoo/models.py` `_create`/`_write` use `self.env.cr.now()`): one stamp per transaction. Reads cut
  them to whole seconds (`odoo/fields.py` `Datetime.to_string`), domains compare against the full value.
* Ids come from PostgreSQL sequences, which are not transactional: they are taken when a record is created and a
  transaction that started first may commit last (out-of-order commits). Changes are visible only after commit.
* Two transactions never write one row (Odoo runs REPEATABLE READ, `odoo/sql_db.py`; the loser retries).
* Selection changes on tracked fields write a `mail.message` + `mail.tracking.value` in the same transaction, the
  value being the *label* in the writer's language (`addons/mail/models/mail_thread.py` `_message_track`,
  `addons/mail/models/mail_tracking_value.py` `_create_tracking_values`); the field link is `field` on 16 and
  `field_id` on 17+.

ORM (`odoo/models.py`, `odoo/osv/expression.py`)
* search_read / search_count / read / fields_get / read_group (16–18) / formatted_read_group (19); Polish-notation
  domains (`&`, `|`, `!`), operators = != < <= > >= in, not in, like, ilike, not like, not ilike, =like, =ilike
  (`like` wraps the value in %…%), dotted paths through many2one; `order`, `limit`, `offset`.
* many2one values read as `[id, display_name]`, empty values as False; `active_test` hides archived records of
  models with an `active` field unless the domain names `active` or the context sets `active_test: False`.
* An unknown field in `fields` or a domain raises ValueError ("Invalid field …", `odoo/models.py`
  `_determine_fields_to_fetch`, `odoo/osv/expression.py` `parse`).
* A model that is not installed raises UserError "Object X doesn't exist" (`odoo/service/model.py`
  `execute_cr`/`check` for XML-RPC/JSON-RPC); JSON-2 answers 404 (`addons/rpc/controllers/json2.py`).
* Access rules (`ir.model.access.csv`): `ir.cron` and `mail.tracking.value` for `base.group_system`
  (`odoo/addons/base/security/ir.model.access.csv`, `addons/mail/security/ir.model.access.csv`), `queue.job` for
  `queue_job.group_queue_job_manager` (OCA/queue `queue_job/security/ir.model.access.csv`), accounting models for
  `account.group_account_invoice` (`addons/account/security/ir.model.access.csv`).
* Accounting (`addons/account/models/account_move.py`, `account_payment.py`, `account_partial_reconcile.py`): draft
  moves are named '/' and have no `payment_reference`, both set by `_post`; 16/17 payments `_inherits` their move
  (state, name and date live on the move, so posting does not touch the payment's `write_date`), 18+ payments have
  their own state (`draft, in_process, paid, canceled, rejected`), `memo` instead of `ref`, and the move's link is
  `origin_payment_id` instead of `payment_id`.
* `queue.job` has `_log_access = False` (no create/write dates) and the states of `queue_job/job.py` `STATES`.

Transports
* `GET /web/version` (17+; 404 on 16 where clients use `common.version`, `odoo/service/common.py`).
* `POST /jsonrpc` (`odoo/http.py` `JsonRPCDispatcher`, `odoo/addons/base/controllers/rpc.py`): errors are HTTP 200
  with an `error` envelope, `code` 200 on 16–18 and 0 on 19, `data.name` the exception class. 19.0 keeps serving it;
  where `rpc.use_deprecated_services` gates it (`addons/rpc/controllers/jsonrpc.py`), NotFound is answered as
  HTTP 200 with `error.code` 404 ("404: Not Found"). /jsonrpc is stateless (`auth="none"`, credentials on every
  call): there is no session to expire; a revoked API key gives AccessDenied.
* `POST /xmlrpc/2/common|object` (`odoo/addons/base/controllers/rpc.py` `xmlrpc_handle_exception_int`): faults 1
  (application error, traceback text), 2 (UserError), 3 (AccessDenied), 4 (AccessError).
* `POST /json/2/<model>/<method>` (19, `addons/rpc/controllers/json2.py`): bearer API key, arguments by name, bare
  JSON result; errors `{"name","message","arguments","context","debug"}` with 401/403/404/422/500.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import xmlrpc.client
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

DB, LOGIN, PASSWORD, API_KEY, UID = "prod", "bot", "s3cret-pass", "odoo-api-key-123", 2
SYSTEM, INVOICE, QUEUE_MANAGER, USER, SALES = ("base.group_system", "account.group_account_invoice",
                                               "queue_job.group_queue_job_manager", "base.group_user",
                                               "sales_team.group_sale_salesman")
ALL_GROUPS = frozenset({SYSTEM, INVOICE, QUEUE_MANAGER, USER, SALES})
LEAST_PRIVILEGED = frozenset({USER, INVOICE, SALES})       # an invoicing bot: no settings, no job queue

LABELS = {  # account.move state labels per language (addons/account/i18n/*.po translate "Posted", "Draft", …)
    "en_US": {"draft": "Draft", "posted": "Posted", "cancel": "Cancelled"},
    "fr_FR": {"draft": "Brouillon", "posted": "Comptabilisé", "cancel": "Annulé"},
}


# -- Odoo's exceptions, as the transports name them (odoo/exceptions.py) ------------------------------------------
class OdooException(Exception):
    name = "odoo.exceptions.UserError"
    fault = 2            # XML-RPC fault code (odoo/addons/base/controllers/rpc.py xmlrpc_handle_exception_int)
    http = 422           # JSON-2 status (exc.http_status)


class UserError(OdooException):
    pass


class AccessError(OdooException):
    name, fault, http = "odoo.exceptions.AccessError", 4, 403


class AccessDenied(OdooException):
    name, fault, http = "odoo.exceptions.AccessDenied", 3, 401


class InvalidField(OdooException):
    """Odoo raises a bare ValueError: an application error (fault 1 with the traceback, HTTP 500 on JSON-2)."""
    name, fault, http = "builtins.ValueError", 1, 500


class MissingModel(UserError):
    pass


class SerializationFailure(Exception):
    """psycopg2.errors.SerializationFailure: a concurrent update of the same row (Odoo retries the request)."""


# -- schemas per version -------------------------------------------------------------------------------------------
def F(type_: str, string: str, **kw) -> dict:
    return {"type": type_, "string": string, "store": kw.pop("store", True), **kw}


MOVE_STATES = [("draft", "Draft"), ("posted", "Posted"), ("cancel", "Cancelled")]
# addons/account/models/account_move.py PAYMENT_STATE_SELECTION (payment_state has tracking=True, like state)
PAYMENT_STATE_SELECTION = [("not_paid", "Not Paid"), ("in_payment", "In Payment"), ("paid", "Paid"),
                           ("partial", "Partially Paid"), ("reversed", "Reversed"),
                           ("invoicing_legacy", "Invoicing App Legacy")]
PAYMENT_STATES_18 = [("draft", "Draft"), ("in_process", "In Process"), ("paid", "Paid"), ("canceled", "Canceled"),
                     ("rejected", "Rejected")]
JOB_STATES = [("wait_dependencies", "Wait Dependencies"), ("pending", "Pending"), ("enqueued", "Enqueued"),
              ("started", "Started"), ("done", "Done"), ("cancelled", "Cancelled"), ("failed", "Failed")]
NO_LOG_ACCESS = {"queue.job"}       # OCA/queue queue_job/models/queue_job.py: _log_access = False
INHERITED = {"state", "name", "date"}    # 16/17 account.payment _inherits account.move (account_payment.py)


def schema(version: int, queue_job: bool) -> dict[str, dict[str, dict]]:
    m2o = lambda rel, s: F("many2one", s, relation=rel)          # noqa: E731
    move = {"name": F("char", "Number"), "state": F("selection", "Status", selection=MOVE_STATES),
            "move_type": F("selection", "Type", selection=[(x, x) for x in ("entry", "out_invoice", "out_refund",
                                                                          "in_invoice", "in_refund")]),
            "amount_total": F("monetary", "Total"), "amount_residual": F("monetary", "Amount Due"),
            "currency_id": m2o("res.currency", "Currency"), "company_id": m2o("res.company", "Company"),
            "partner_id": m2o("res.partner", "Partner"), "ref": F("char", "Reference"),
            "payment_reference": F("char", "Payment Reference"), "invoice_origin": F("char", "Origin"),
            "payment_state": F("selection", "Payment Status", selection=PAYMENT_STATE_SELECTION),
            "invoice_date": F("date", "Invoice Date"), "invoice_date_due": F("date", "Due Date"),
            "date": F("date", "Date"), "statement_line_id": m2o("account.bank.statement.line", "Statement Line")}
    if version < 18:
        move["payment_id"] = m2o("account.payment", "Payment")
    else:
        move["origin_payment_id"] = m2o("account.payment", "Payment")
    payment = {"amount": F("monetary", "Amount"), "currency_id": m2o("res.currency", "Currency"),
               "company_id": m2o("res.company", "Company"), "partner_id": m2o("res.partner", "Customer/Vendor"),
               "payment_type": F("selection", "Payment Type", selection=[("outbound", "Send"),
                                                                          ("inbound", "Receive")]),
               "is_reconciled": F("boolean", "Is Reconciled"), "is_matched": F("boolean", "Is Matched"),
               "payment_reference": F("char", "Payment Reference"), "move_id": m2o("account.move", "Journal Entry"),
               "name": F("char", "Number"), "date": F("date", "Date")}
    if version < 18:       # _inherits account.move: state comes from the move
        payment.update(state=F("selection", "Status", selection=MOVE_STATES), ref=F("char", "Reference"))
    else:
        payment.update(state=F("selection", "Status", selection=PAYMENT_STATES_18), memo=F("char", "Memo"))
    models = {
        "res.company": {"name": F("char", "Company Name")},
        "res.currency": {"name": F("char", "Currency")},
        "res.partner": {"name": F("char", "Name"), "active": F("boolean", "Active")},
        "res.lang": {"code": F("char", "Locale Code"), "name": F("char", "Name"), "active": F("boolean", "Active")},
        "res.users": {"login": F("char", "Login")},
        "ir.model": {"model": F("char", "Model"), "name": F("char", "Model Description")},
        "ir.model.fields": {"name": F("char", "Field Name"), "model": F("char", "Model")},
        "account.move": move,
        "account.move.line": {"move_id": m2o("account.move", "Journal Entry"),
                              "payment_id": m2o("account.payment", "Originator Payment"),
                              "company_id": m2o("res.company", "Company"),
                              "currency_id": m2o("res.currency", "Currency"), "balance": F("monetary", "Balance"),
                              "amount_residual": F("monetary", "Residual Amount"),
                              "reconciled": F("boolean", "Reconciled"), "date": F("date", "Date")},
        "account.payment": payment,
        "account.partial.reconcile": {
            "debit_move_id": m2o("account.move.line", "Debit line"),
            "credit_move_id": m2o("account.move.line", "Credit line"),
            "amount": F("monetary", "Amount"), "debit_amount_currency": F("monetary", "Debit amount in currency"),
            "credit_amount_currency": F("monetary", "Credit amount in currency"),
            "company_id": m2o("res.company", "Company"), "company_currency_id": m2o("res.currency", "Currency"),
            "max_date": F("date", "Max Date of Matched Lines")},
        "account.bank.statement.line": {"move_id": m2o("account.move", "Journal Entry"),
                                        "amount": F("monetary", "Amount"), "date": F("date", "Date"),
                                        "is_reconciled": F("boolean", "Is Reconciled"),
                                        "payment_ref": F("char", "Label"),
                                        "company_id": m2o("res.company", "Company"),
                                        "currency_id": m2o("res.currency", "Journal Currency"),
                                        "amount_residual": F("float", "Residual Amount")},
        "sale.order": {"name": F("char", "Order Reference"), "is_subscription": F("boolean", "Recurring"),
                       "next_invoice_date": F("date", "Date of Next Invoice")},
        "ir.cron": {"cron_name": F("char", "Name"), "active": F("boolean", "Active"),
                    "nextcall": F("datetime", "Next Execution Date"), "lastcall": F("datetime", "Last Execution")},
        "mail.message": {"model": F("char", "Related Document Model"), "res_id": F("integer", "Related Document ID"),
                         "date": F("datetime", "Date")},
        "mail.tracking.value": {("field" if version == 16 else "field_id"): m2o("ir.model.fields", "Changed Field"),
                                "old_value_char": F("char", "Old Value Char"),
                                "new_value_char": F("char", "New Value Char"),
                                "mail_message_id": m2o("mail.message", "Message ID")},
    }
    if version == 16:
        models["sale.order"].update(stage_category=F("selection", "Stage Category", selection=[
            (x, x) for x in ("draft", "progress", "paused", "closed")]))
    else:
        models["sale.order"].update(subscription_state=F("selection", "Subscription Status", selection=[
            (x, x) for x in ("1_draft", "2_renewal", "3_progress", "4_paused", "5_renewed", "6_churn", "7_upsell")]))
    if queue_job:
        models["queue.job"] = {"uuid": F("char", "UUID"), "state": F("selection", "State", selection=JOB_STATES),
                               "date_created": F("datetime", "Created Date"),
                               "date_enqueued": F("datetime", "Enqueue Time"),
                               "date_started": F("datetime", "Start Date"), "date_done": F("datetime", "Date Done"),
                               "eta": F("datetime", "Execute only after"), "channel": F("char", "Channel"),
                               "company_id": m2o("res.company", "Company")}
    for model in ("account.move", "account.payment"):     # mail.thread models: the chatter's messages
        models[model]["message_ids"] = F("one2many", "Messages", relation="mail.message", store=False)
    for model, fields in models.items():
        fields["id"] = F("integer", "ID")
        if model not in NO_LOG_ACCESS:
            fields["create_date"] = F("datetime", "Created on")
            fields["write_date"] = F("datetime", "Last Updated on")
    return models


JSON2_SIGNATURES = {     # public methods revwatch calls, with their parameter names (odoo/models.py, 19.0)
    "search_read": {"domain", "fields", "offset", "limit", "order"},
    "search_count": {"domain", "limit"}, "search": {"domain", "offset", "limit", "order"},
    "read": {"fields", "load"}, "fields_get": {"allfields", "attributes"},
    "formatted_read_group": {"domain", "groupby", "aggregates", "having", "offset", "limit", "order"},
    "context_get": set()}
ACCESS = {"ir.cron": SYSTEM, "mail.tracking.value": SYSTEM, "queue.job": QUEUE_MANAGER, "sale.order": SALES,
          "account.move": INVOICE, "account.move.line": INVOICE, "account.payment": INVOICE,
          "account.partial.reconcile": INVOICE, "account.bank.statement.line": INVOICE}
MODEL_LABELS = {"ir.cron": "Scheduled Actions", "mail.tracking.value": "Mail Tracking Value",
                "queue.job": "Queue Job"}


# -- values -------------------------------------------------------------------------------------------------------
def to_string(value) -> str:
    """Datetime → 'YYYY-MM-DD HH:MM:SS' (microseconds dropped, odoo/fields.py Datetime.to_string)."""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def parse_dt(value) -> dt.datetime:
    """A domain operand for a datetime field ('YYYY-MM-DD HH:MM:SS', odoo/fields.py Datetime.to_datetime)."""
    return dt.datetime.fromisoformat(str(value)[:19])


def like(pattern: str, value: str, insensitive: bool, wrap: bool) -> bool:
    """SQL LIKE: % any run, _ one character; plain `like` wraps the value in %…% (odoo/osv/expression.py)."""
    body = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    rx = f".*{body}.*" if wrap else body
    return re.fullmatch(rx, value, re.S | (re.I if insensitive else 0)) is not None


@dataclass
class Transaction:
    """One database transaction: one stamp for all its writes, visible at commit."""
    odoo: "FakeOdoo"
    stamp: dt.datetime
    lang: str = "en_US"
    ops: list = field(default_factory=list)
    committed: bool = False
    tracking: bool = True      # False: context tracking_disable (imports, some integrations): no tracking values
    snapshot: int = 0          # commits visible when it began (REPEATABLE READ snapshot)

    def create(self, model_name: str, /, **vals) -> int:
        model = model_name
        rid = next(self.odoo.sequences.setdefault(model, itertools.count(1000 if model == "account.move" else 1)))
        self.ops.append(("create", model, rid, vals))
        return rid

    def write(self, model: str, rid: int, /, **vals) -> None:
        self.ops.append(("write", model, rid, vals))

    def post(self, move_id: int, name: str, payment_reference: str | None = None) -> None:
        """account.move._post: state, the sequence number and (invoices) the payment reference at once."""
        vals = {"state": "posted", "name": name}
        if payment_reference is not None:
            vals["payment_reference"] = payment_reference
        self.write("account.move", move_id, **vals)

    def commit(self) -> None:
        self.odoo._apply(self)
        self.committed = True

    # -- accounting flows, as one request (one transaction) runs them --------------------------------------------
    def view(self, model: str, rid: int) -> dict:
        """A record as this transaction sees it: the committed row plus its own pending writes."""
        rec = dict(self.odoo.tables[model].get(rid, {}))
        for _op, m, r, vals in self.ops:
            if m == model and r == rid:
                rec.update(vals, id=rid)
        return rec

    def reset_to_draft(self, move_id: int) -> None:
        """account.move.button_draft: posted or cancelled → draft (addons/account/models/account_move.py)."""
        self.write("account.move", move_id, state="draft")

    def cancel(self, move_id: int) -> None:
        """account.move.button_cancel: draft → cancel; a posted move is reset to draft first (its own request)."""
        self.write("account.move", move_id, state="cancel")

    def _settle(self, invoice: int, amount: float, counterpart_move: int, payment: int | bool,
                matched: bool) -> int:
        """Reconcile `amount` of the invoice's receivable line with the counterpart's line: one
        account.partial.reconcile, and the invoice's residual and payment_state recomputed
        (account_move.py `_compute_amount`, `_compute_payment_state`: `in_payment` while the paying entry is not
        matched with a bank statement, `paid` once it is, `partial` while something is due)."""
        inv = self.view("account.move", invoice)
        cur, company = inv.get("currency_id") or 1, inv.get("company_id") or 1
        a = self.create("account.move.line", move_id=invoice, company_id=company, currency_id=cur, balance=amount,
                        amount_residual=0.0, reconciled=True)
        b = self.create("account.move.line", move_id=counterpart_move, payment_id=payment, company_id=company,
                        currency_id=cur, balance=-amount, amount_residual=0.0, reconciled=True)
        part = self.create("account.partial.reconcile", debit_move_id=a, credit_move_id=b, amount=amount,
                           debit_amount_currency=amount, credit_amount_currency=amount, company_id=company,
                           company_currency_id=cur, max_date=str(self.stamp.date()))
        residual = round((inv.get("amount_residual") or 0.0) - amount, 2)
        state = "partial" if residual > 0 else ("paid" if matched else "in_payment")
        self.write("account.move", invoice, amount_residual=max(residual, 0.0), payment_state=state)
        return part

    def register_payment(self, invoice: int, amount: float, name: str) -> int:
        """The register-payment wizard on one invoice (addons/account/wizard/account_payment_register.py
        `action_create_payments` → `_create_payment_vals_from_wizard`, `_init_payments`, `_post_payments`,
        `_reconcile_payments`, all in the one request): the payment's `ref` (16/17) / `memo` (18+) is the
        communication — the invoice's payment reference (`_get_batch_communication`, `_compute_communication`) — and
        its `payment_reference` stays empty; it is posted and reconciled with the invoice. Returns the payment id."""
        inv = self.view("account.move", invoice)
        communication = inv.get("payment_reference") or inv.get("name")
        odoo = self.odoo
        common = dict(amount=amount, currency_id=inv.get("currency_id") or 1, company_id=inv.get("company_id") or 1,
                      partner_id=inv.get("partner_id") or False, payment_type="inbound", payment_reference=False,
                      is_reconciled=False, is_matched=False)
        move = self.create("account.move", name="/", state="draft", move_type="entry", amount_total=amount,
                           currency_id=common["currency_id"], company_id=common["company_id"],
                           date=str(self.stamp.date()))
        if odoo.version < 18:      # account_payment.py 16/17: _inherits account.move; `ref` holds the memo
            pay = self.create("account.payment", move_id=move, ref=communication, **common)
            self.write("account.move", move, payment_id=pay)
        else:                      # 18+: own state, `memo`, the move points back with origin_payment_id
            pay = self.create("account.payment", move_id=move, state="draft", memo=communication, name="/",
                              date=str(self.stamp.date()), **common)
            self.write("account.move", move, origin_payment_id=pay)
        self.post(move, name)                                   # action_post
        if odoo.version >= 18:
            self.write("account.payment", pay, state="in_process", name=name)
        self._settle(invoice, amount, move, pay, matched=False)
        self.write("account.payment", pay, is_reconciled=True)
        return pay

    def reconcile_statement(self, invoice: int, amount: float, label: str) -> tuple[int, int]:
        """A bank statement line matched with the invoice in the reconciliation widget (no payment record on 17+:
        the line's own move settles it, addons/account/models/account_bank_statement_line.py). Returns
        (statement line id, partial id)."""
        inv = self.view("account.move", invoice)
        cur, company = inv.get("currency_id") or 1, inv.get("company_id") or 1
        st_line = self.create("account.bank.statement.line", amount=amount, date=str(self.stamp.date()),
                              is_reconciled=True, payment_ref=label, company_id=company, currency_id=cur,
                              amount_residual=0.0)
        st_move = self.create("account.move", name=f"BNK1/{st_line:05d}", state="posted", move_type="entry",
                              statement_line_id=st_line, company_id=company, currency_id=cur, amount_total=amount)
        return st_line, self._settle(invoice, amount, st_move, False, matched=True)


class FakeOdoo:
    """One fake Odoo server (one database); `app` is its ASGI application."""

    def __init__(self, version: int, groups=ALL_GROUPS, queue_job: bool = True, rpc_gated: bool = False,
                 now: dt.datetime | None = None, seed_data: bool = True, tracking_lang: str = "en_US"):
        self.version, self.groups, self.queue_job = version, frozenset(groups), queue_job
        self.rpc_gated = rpc_gated               # 19: ir.config_parameter rpc.use_deprecated_services = False
        self.api_keys = {API_KEY}
        self.models = schema(version, queue_job)
        self.tables: dict[str, dict[int, dict]] = {m: {} for m in self.models}
        self.sequences: dict[str, itertools.count] = {}
        self.now = (now or dt.datetime.now(dt.timezone.utc)).replace(tzinfo=None)
        self.calls: list[tuple[str, str, str]] = []            # (protocol, model, method)
        self.commits = 0
        self.row_commit: dict[tuple[str, int], int] = {}       # row -> commit number of its last writer
        self.thread: dict[tuple[str, int], list[int]] = {}     # (model, id) -> its mail.message ids
        self.deprecation_warnings = 0
        self._bootstrap()
        if seed_data:
            seed(self, tracking_lang)
        self._app: FastAPI | None = None

    @property
    def app(self) -> FastAPI:
        if self._app is None:
            self._app = self._build()
        return self._app

    # -- writing ------------------------------------------------------------------------------------------------
    def begin(self, at: dt.datetime | None = None, lang: str = "en_US") -> Transaction:
        return Transaction(self, at or self.now, lang, snapshot=self.commits)

    @contextmanager
    def transaction(self, at: dt.datetime | None = None, lang: str = "en_US"):
        tx = self.begin(at, lang)
        yield tx
        tx.commit()

    def tracked(self, model: str) -> tuple[str, ...]:
        """Fields with tracking=True that revwatch reads: account.move `state` and `payment_state`
        (addons/account/models/account_move.py); account.payment `state` on 18+ (16/17: it is the move's)."""
        if model == "account.move":
            return ("state", "payment_state")
        return ("state",) if model == "account.payment" and self.version >= 18 else ()

    def _apply(self, tx: Transaction) -> None:
        # REPEATABLE READ (odoo/sql_db.py): writing a row another transaction committed after our snapshot fails
        # with a serialization error, and Odoo retries the whole request with a new transaction (a new stamp)
        for op, model, rid, _ in tx.ops:
            if op == "write" and self.row_commit.get((model, rid), 0) > tx.snapshot:
                raise SerializationFailure("could not serialize access due to concurrent update")
        self.commits += 1
        for _op, model, rid, _ in tx.ops:
            self.row_commit[(model, rid)] = self.commits
        # tracking compares each record's tracked values before its first write in the transaction with the values
        # at commit, and logs one message with one value per changed field (addons/mail/models/mail_thread.py
        # `_track_prepare` keeps the initial values, `_track_finalize` runs `_message_track` at precommit): a
        # field changed twice in one transaction is one change; values set by `create` are not tracked changes
        initial: dict[tuple[str, int], dict] = {}
        for op, model, rid, vals in tx.ops:
            table = self.tables[model]
            if op == "create":
                rec = {k: False for k in self.models[model]}
                rec.update(id=rid, **({"active": True} if "active" in self.models[model] else {}))
                if model not in NO_LOG_ACCESS:
                    rec.update(create_date=tx.stamp, write_date=tx.stamp)
                rec.update(vals)
                table[rid] = rec
            else:
                rec = table[rid]
                if self.tracked(model):
                    initial.setdefault((model, rid), {f: rec.get(f) for f in self.tracked(model)})
                rec.update(vals)
                if model not in NO_LOG_ACCESS:
                    rec["write_date"] = tx.stamp
        if tx.tracking:
            for (model, rid), before in initial.items():
                changed = [(f, old, self.tables[model][rid].get(f)) for f, old in before.items()
                           if self.tables[model][rid].get(f) != old]
                if changed:
                    self._track(tx, model, rid, changed)

    def _label(self, lang: str, model: str, field: str, value) -> str | bool:
        if value in (False, None):
            return False
        if model == "account.move" and field == "state":
            return LABELS.get(lang, LABELS["en_US"]).get(value, value)
        return dict(self.models[model][field]["selection"]).get(value, value)

    def _track(self, tx: Transaction, model: str, rid: int, changed: list[tuple[str, object, object]]) -> None:
        """mail.thread._message_track: one message, one tracking value per changed field holding the selection
        *labels* in the writer's language (addons/mail/models/mail_tracking_value.py `_create_tracking_values`),
        dated by the transaction (create_date = `cr.now()`)."""
        msg = next(self.sequences.setdefault("mail.message", itertools.count(1)))
        self.tables["mail.message"][msg] = {"id": msg, "model": model, "res_id": rid, "date": tx.stamp,
                                            "create_date": tx.stamp, "write_date": tx.stamp}
        self.thread.setdefault((model, rid), []).append(msg)
        link = "field" if self.version == 16 else "field_id"
        for name, old, new in changed:
            tid = next(self.sequences.setdefault("mail.tracking.value", itertools.count(1)))
            self.tables["mail.tracking.value"][tid] = {
                "id": tid, link: self._field_ids[(model, name)],
                "old_value_char": self._label(tx.lang, model, name, old),
                "new_value_char": self._label(tx.lang, model, name, new), "mail_message_id": msg,
                "create_date": tx.stamp, "write_date": tx.stamp}

    def _bootstrap(self) -> None:
        t0 = self.now - dt.timedelta(days=400)
        with self.transaction(t0) as tx:
            for model in self.models:
                tx.create("ir.model", model=model, name=model)
            self._field_ids = {(model, f): tx.create("ir.model.fields", name=f, model=model)
                               for model, fields in self.models.items() for f in fields}
            tx.create("res.company", name="Revwatch SA")
            tx.create("res.company", name="Revwatch Inc")
            tx.create("res.currency", name="EUR")
            tx.create("res.currency", name="USD")
            tx.create("res.lang", code="en_US", name="English (US)")
            tx.create("res.lang", code="fr_FR", name="French / Français")
            tx.create("res.users", login=LOGIN)

    def revoke_api_key(self) -> None:
        """res.users.apikeys revoke: the key stops authenticating at once."""
        self.api_keys.clear()

    # -- reading: the ORM --------------------------------------------------------------------------------------
    def _check_model(self, model: str) -> dict[str, dict]:
        if model not in self.models:
            raise MissingModel(f"Object {model} doesn't exist")
        group = ACCESS.get(model)
        if group and group not in self.groups:
            raise AccessError(f"You are not allowed to access '{MODEL_LABELS.get(model, model)}' ({model}) "
                              f"records.\n\nThis operation is allowed for the following groups:\n\t- {group}\n\n"
                              "Contact your administrator to request access if necessary.")
        return self.models[model]

    def _field(self, model: str, path: str, leaf=None) -> tuple[str, dict]:
        fields = self.models[model]
        head = path.split(".", 1)[0]
        if head not in fields:
            where = f" in leaf {leaf!r}" if leaf is not None else ""
            raise InvalidField(f"Invalid field {model}.{head}{where}" if leaf is not None
                               else f"Invalid field {head!r} on model {model!r}")
        return head, fields[head]

    def _stored(self, model: str, rec: dict, name: str):
        """A field's stored value; 16/17 payments read state/name/date from their move (`_inherits`)."""
        if model == "account.payment" and self.version < 18 and name in INHERITED and rec.get("move_id"):
            return self.tables["account.move"][rec["move_id"]].get(name, False)
        if name == "message_ids":      # mail.thread's one2many (addons/mail/models/mail_thread.py), newest first
            return sorted(self.thread.get((model, rec["id"]), ()), reverse=True)
        return rec.get(name, False)

    def _value(self, model: str, rec: dict, path: str, leaf):
        head, spec = self._field(model, path, leaf)
        v = self._stored(model, rec, head)
        if "." in path:
            rel = spec.get("relation")
            target = self.tables[rel].get(v) if v else None
            return self._value(rel, target, path.split(".", 1)[1], leaf) if target else False
        return v

    def _match(self, model: str, rec: dict, leaf) -> bool:
        path, op, value = leaf
        v = self._value(model, rec, path, leaf)
        spec = self._spec_at(model, path)
        if spec["type"] == "datetime" and value not in (False, None) and not isinstance(value, (list, tuple)):
            value = parse_dt(value)
        elif spec["type"] == "many2one" and isinstance(value, (list, tuple)) and op not in ("in", "not in"):
            value = value[0]
        if op in ("=", "=="):
            return v == value if value is not False else v in (False, None, "")
        if op in ("!=", "<>"):
            return v != value if value is not False else v not in (False, None, "")
        if op in ("<", "<=", ">", ">="):
            if v in (False, None):
                return False
            a, b = (str(v), str(value)) if spec["type"] == "date" else (v, value)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if op in ("in", "not in"):
            inside = v in list(value) or (v in (False, None) and False in value)
            return inside if op == "in" else not inside
        if op in ("like", "ilike", "not like", "not ilike", "=like", "=ilike"):
            hit = v not in (False, None) and like(str(value), str(v), "ilike" in op, not op.startswith("="))
            return not hit if op.startswith("not") else hit
        raise UserError(f"Invalid domain operator {op!r}")

    def _spec_at(self, model: str, path: str) -> dict:
        head, spec = self._field(model, path)
        return self._spec_at(spec["relation"], path.split(".", 1)[1]) if "." in path else spec

    def search(self, model: str, domain: list, context: dict | None = None) -> list[dict]:
        fields = self._check_model(model)
        items = [tuple(x) if isinstance(x, list) else x for x in (domain or [])]
        leaves = [x for x in items if isinstance(x, tuple)]
        for leaf in leaves:
            if len(leaf) != 3:
                raise UserError(f"Invalid leaf {leaf!r}")
            self._field(model, leaf[0], leaf)
        if ("active" in fields and (context or {}).get("active_test", True)
                and not any(leaf[0] == "active" for leaf in leaves)):
            items = ["&", ("active", "=", True)] + (items or [("id", "!=", 0)])

        def holds(rec: dict) -> bool:
            stack: list[bool] = []
            for item in reversed(items):
                if item == "!":
                    stack.append(not stack.pop())
                elif item in ("&", "|"):
                    a, b = stack.pop(), stack.pop()
                    stack.append(a and b if item == "&" else a or b)
                else:
                    stack.append(self._match(model, rec, item))
            return all(stack)
        return [r for r in self.tables[model].values() if holds(r)]

    def render(self, model: str, rec: dict, fields: list[str] | None) -> dict:
        specs = self.models[model]
        names = fields or list(specs)
        for f in names:
            self._field(model, f)
        out = {"id": rec["id"]}
        for f in names:
            v, spec = self._stored(model, rec, f), specs[f]
            if spec["type"] == "datetime" and v:
                v = to_string(v)
            elif spec["type"] == "many2one":
                v = [v, self._display_name(spec["relation"], v)] if v else False
            elif v is None:
                v = False
            out[f] = v
        return out

    def _display_name(self, model: str, rid: int) -> str:
        rec = self.tables[model].get(rid, {})
        return str(rec.get("name") or rec.get("login") or rec.get("code") or f"{model},{rid}")

    def _sort(self, records: list[dict], order: str | None, model: str = "") -> list[dict]:
        out = list(records)
        for part in reversed([p.strip() for p in (order or "id asc").split(",") if p.strip()]):
            name, _, direction = part.partition(" ")

            def key(r, name=name):
                v = self._stored(model, r, name)
                return (v in (False, None), v or 0)
            out.sort(key=key, reverse=direction.strip().lower() == "desc")
        return out

    def execute(self, model: str, method: str, args: list, kw: dict):
        """`execute_kw(model, method, args, kw)` as `odoo/service/model.py` runs it for the API user."""
        ctx = kw.pop("context", None) or {}
        if method in ("search_read", "search_count", "read_group", "formatted_read_group", "search"):
            domain = kw.get("domain", args[0] if args else [])
            found = self.search(model, domain, ctx)
        if method == "search_read":
            fields = kw.get("fields", args[1] if len(args) > 1 else None)
            found = self._sort(found, kw.get("order"), model)
            off, lim = int(kw.get("offset", 0) or 0), kw.get("limit")
            return [self.render(model, r, fields) for r in found[off: off + lim if lim else None]]
        if method == "search":
            return [r["id"] for r in self._sort(found, kw.get("order"), model)]
        if method == "search_count":
            return len(found)
        if method == "read":
            self._check_model(model)
            ids = kw.get("ids", args[0] if args else [])
            fields = kw.get("fields", args[1] if len(args) > 1 else None)
            return [self.render(model, self.tables[model][i], fields) for i in ids if i in self.tables[model]]
        if method == "read_group":
            if self.version >= 19:
                raise UserError("read_group has been replaced by formatted_read_group")
            fields = kw.get("fields", args[1] if len(args) > 1 else [])
            groupby = kw.get("groupby", args[2] if len(args) > 2 else [])
            lazy = kw.get("lazy", True)
            return self._group(model, found, groupby if not lazy else groupby[:1], fields, lazy, style="read_group")
        if method == "formatted_read_group":
            if self.version < 19:
                raise AttributeError(f"The method '{model}.formatted_read_group' does not exist")
            return self._group(model, found, kw.get("groupby", []), kw.get("aggregates", []), False,
                               style="formatted")
        if method == "fields_get":            # checks no model access (odoo/models.py fields_get)
            if model not in self.models:
                raise MissingModel(f"Object {model} doesn't exist")
            specs = self.models[model]
            names = kw.get("allfields") or (args[0] if args else None) or list(specs)
            attrs = kw.get("attributes") or (args[1] if len(args) > 1 else None)
            lang = ctx.get("lang", "en_US")
            out = {}
            for n in names:
                if n not in specs:
                    continue                               # fields_get ignores unknown names
                spec = dict(specs[n])
                if n == "state" and model == "account.move":
                    spec["selection"] = [[k, LABELS.get(lang, LABELS["en_US"])[k]] for k, _ in MOVE_STATES]
                out[n] = {k: v for k, v in spec.items() if not attrs or k in attrs}
            return out
        if method == "context_get" and model == "res.users":
            return {"lang": "en_US", "tz": "UTC", "uid": UID}
        raise AttributeError(f"The method '{method}' does not exist on the model '{model}'")

    def _group(self, model: str, found: list[dict], groupby: list[str], aggregates: list[str], lazy: bool,
               style: str) -> list[dict]:
        specs = self.models[model]
        groups: dict[tuple, list[dict]] = {}
        for r in found:
            groups.setdefault(tuple(r.get(g, False) for g in groupby), []).append(r)
        out = []
        for key, recs in groups.items():
            row: dict = {}
            for g, v in zip(groupby, key):
                row[g] = [v, self._display_name(specs[g]["relation"], v)] if specs[g]["type"] == "many2one" and v \
                    else v
            for spec in aggregates:
                name, _, func = spec.partition(":")
                if name in groupby or name == "__count" or specs.get(name, {}).get("type") not in (
                        "monetary", "float", "integer"):
                    continue
                total = round(sum(r.get(name) or 0 for r in recs), 2)
                row[spec if style == "formatted" else name] = total
            if style == "formatted":
                row["__count"] = len(recs)
                row["__extra_domain"] = [[g, "=", v] for g, v in zip(groupby, key)]
            else:
                row["__count" if not lazy else f"{groupby[0]}_count"] = len(recs)
                row["__domain"] = [[g, "=", v] for g, v in zip(groupby, key)]
            out.append(row)
        return out

    # -- transports ---------------------------------------------------------------------------------------------
    def _authenticate(self, db, login, password) -> int | bool:
        return UID if db == DB and login == LOGIN and (password == PASSWORD or password in self.api_keys) else False

    def _object(self, protocol: str, args: list):
        db, uid, password, model, method, margs, *rest = args
        kw = dict(rest[0]) if rest else {}
        self.calls.append((protocol, model, method))
        if db != DB or uid != UID or not (password == PASSWORD or password in self.api_keys):
            raise AccessDenied("Access Denied")
        return self.execute(model, method, list(margs), kw)

    def _dispatch(self, protocol: str, service: str, method: str, args: list):
        if service == "common" and method == "version":
            return {"server_version": f"{self.version}.0", "server_version_info": [self.version, 0, 0, "final", 0, ""],
                    "server_serie": f"{self.version}.0", "protocol_version": 1}
        if service == "common" and method in ("login", "authenticate"):
            return self._authenticate(*args[:3])
        if service == "object" and method in ("execute_kw", "execute"):
            return self._object(protocol, list(args))
        raise UserError(f"Unknown method {service}.{method}")

    def _gated(self, service: str, method: str) -> bool:
        """19: addons/rpc/controllers/jsonrpc.py refuses object and login calls unless the parameter allows them."""
        return self.version >= 19 and self.rpc_gated and (service == "object" or method in ("login", "authenticate"))

    def jsonrpc_reply(self, body: dict) -> dict:
        """The `/jsonrpc` answer to one request body (the route and `transport()` share it)."""
        rid, params = body.get("id"), body.get("params") or {}
        service, method, args = params.get("service"), params.get("method"), params.get("args", [])
        if self._gated(service, method):
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": 404, "message": "404: Not Found", "data": {
                "name": "werkzeug.exceptions.NotFound", "debug": "", "message": "404 Not Found: The requested "
                "URL was not found on the server.", "arguments": [], "context": {}}}}
        if self.version >= 19:
            self.deprecation_warnings += 1            # RPC_DEPRECATION_NOTICE is logged, the call is served
        try:
            return {"jsonrpc": "2.0", "id": rid, "result": self._dispatch("jsonrpc", service, method, args)}
        except (OdooException, AttributeError) as e:
            name = getattr(e, "name", "builtins.AttributeError")
            return {"jsonrpc": "2.0", "id": rid, "error": {
                "code": 0 if self.version >= 19 else 200, "message": "Odoo Server Error",
                "data": {"name": name, "message": str(e), "arguments": [str(e)], "context": {},
                         "debug": f"Traceback (most recent call last):\n  …\n{name}: {e}"}}}

    def transport(self) -> httpx.MockTransport:
        """The JSON-RPC door in process (no server, no thread): for property tests and benches that poll
        thousands of times; the same answers as the ASGI app's `/web/version` and `/jsonrpc`."""
        def handle(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/web/version":
                if self.version == 16:
                    return httpx.Response(404)
                return httpx.Response(200, json={"version_info": [self.version, 0, 0, "final", 0, ""]})
            if request.url.path == "/jsonrpc":
                return httpx.Response(200, content=json.dumps(self.jsonrpc_reply(json.loads(request.content)),
                                                              default=str))
            return httpx.Response(404)
        return httpx.MockTransport(handle)

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/web/version")
        def web_version():
            if self.version == 16:
                return Response(status_code=404)
            return {"version_info": [self.version, 0, 0, "final", 0, ""], "version": f"{self.version}.0"}

        @app.post("/jsonrpc")
        async def jsonrpc(request: Request):
            try:
                body = await request.json()
            except ValueError:
                return Response("Invalid JSON data", status_code=400)
            return self.jsonrpc_reply(body)

        @app.post("/xmlrpc/2/{service}")
        async def xml(service: str, request: Request):
            params, method = xmlrpc.client.loads(await request.body(), use_builtin_types=True)
            if self._gated(service, method):
                return Response(status_code=404)
            try:
                result = self._dispatch("xmlrpc", service, method, list(params))
                payload = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False)
            except (OdooException, AttributeError) as e:
                code = getattr(e, "fault", 1)
                name = getattr(e, "name", "builtins.AttributeError")
                text = f"Traceback (most recent call last):\n  …\n{name.split('.')[-1]}: {e}" if code == 1 else str(e)
                payload = xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True)
            return Response(payload, media_type="text/xml")

        @app.post("/json/2/{model}/{method}")
        async def json2(model: str, method: str, request: Request):
            def error(status: int, name: str, message: str):
                return JSONResponse({"name": name, "message": message, "arguments": [message, status],
                                     "context": {}, "debug": ""}, status)
            if self.version < 19:
                return Response(status_code=404)
            auth = request.headers.get("authorization", "")
            kind, _, token = auth.partition(" ")
            if kind.lower() != "bearer" or token not in self.api_keys:
                return error(401, "werkzeug.exceptions.Unauthorized", "Invalid apikey")
            body = await request.json()
            self.calls.append(("json2", model, method))
            if model not in self.models or method not in JSON2_SIGNATURES:
                return error(404, "werkzeug.exceptions.NotFound", "Not Found")
            unexpected = sorted(set(body) - JSON2_SIGNATURES[method] - {"ids", "context"})
            if unexpected:                 # kwargs that do not bind to the method's signature
                return error(422, "werkzeug.exceptions.UnprocessableEntity",
                             f"{method}() got an unexpected keyword argument '{unexpected[0]}'")
            try:
                return self.execute(model, method, [], dict(body))
            except OdooException as e:
                return error(e.http, e.name, str(e))
            except (TypeError, KeyError) as e:
                return error(422, "werkzeug.exceptions.UnprocessableEntity", str(e))

        return app


def seed(odoo: FakeOdoo, lang: str = "en_US") -> None:
    """A small, realistic book: invoices in two companies and currencies, payments, a bank line, subscriptions,
    crons and queue jobs — each written in its own transaction, as Odoo would."""
    now = odoo.now
    ago = lambda **kw: now - dt.timedelta(**kw)        # noqa: E731
    company, company2 = 1, 2
    eur, usd = 1, 2
    partners = []
    with odoo.transaction(ago(days=300)) as tx:
        for i in range(1, 6):
            partners.append(tx.create("res.partner", name=f"Customer {i}"))
        tx.create("res.partner", name="Archived Ltd", active=False)
    moves = {}
    for i in range(1, 8):                              # invoice i: created 60−i min ago
        at = ago(days=3) if i == 6 else ago(minutes=60 - i, microseconds=-123456 * i)
        with odoo.transaction(at) as tx:
            moves[i] = tx.create("account.move", name="/", state="draft", move_type="out_invoice",
                                 amount_total=100.0 * i, amount_residual=100.0 * i,
                                 currency_id=usd if i == 5 else eur, company_id=company2 if i == 5 else company,
                                 partner_id=partners[(i - 1) % 5], invoice_origin=f"SUB{i:03d}",
                                 payment_state="not_paid", invoice_date=str(ago(minutes=60 - i).date()),
                                 invoice_date_due=str(ago(days=40 - 5 * i).date()))
    for i in range(1, 6):                              # posted 40−i min ago, in the poster's language
        with odoo.transaction(ago(minutes=40 - i), lang=lang) as tx:
            tx.post(moves[i], f"INV/2026/{i:05d}", f"INV/2026/{i:05d}")
    with odoo.transaction(ago(minutes=45)) as tx:
        tx.create("account.move", name="MISC/2026/0001", state="posted", move_type="entry", amount_total=5.0,
                  currency_id=eur, company_id=company)
    # payments: 1 reconciled with invoice 1, 2 posted open (in process), 3 draft
    for i in (1, 2, 3):
        with odoo.transaction(ago(minutes=30 - i)) as tx:
            vals = dict(amount=100.0 * i, currency_id=eur, company_id=company, partner_id=partners[i - 1],
                        payment_type="inbound", payment_reference=f"INV/2026/{i:05d}", name="/",
                        date=str(ago(minutes=30 - i).date()), is_reconciled=False, is_matched=False)
            if odoo.version < 18:
                move = tx.create("account.move", name="/", state="draft", move_type="entry", amount_total=100.0 * i,
                                 currency_id=eur, company_id=company, date=vals["date"])
                vals = {k: v for k, v in vals.items() if k not in INHERITED}
                pay = tx.create("account.payment", move_id=move, ref=f"pay_{i}", **vals)
                tx.write("account.move", move, payment_id=pay)
            else:
                move = tx.create("account.move", name="/", state="draft", move_type="entry", amount_total=100.0 * i,
                                 currency_id=eur, company_id=company) if i != 3 else False
                pay = tx.create("account.payment", move_id=move, state="draft", memo=f"pay_{i}", **vals)
                if move:
                    tx.write("account.move", move, origin_payment_id=pay)
        if i == 3:
            continue
        with odoo.transaction(ago(minutes=25 - i)) as tx:           # post the payment
            tx.post(move, f"PBNK1/2026/{i:05d}")
            if odoo.version >= 18:
                tx.write("account.payment", pay, state="in_process", name=f"PBNK1/2026/{i:05d}")
        odoo_pay = pay
        if i == 1:                                      # reconcile payment 1 with invoice 1
            with odoo.transaction(ago(minutes=20)) as tx:
                inv_line = tx.create("account.move.line", move_id=moves[1], company_id=company, currency_id=eur,
                                     balance=100.0, amount_residual=0.0, reconciled=True, date=str(now.date()))
                pay_line = tx.create("account.move.line", move_id=move, payment_id=odoo_pay, company_id=company,
                                     currency_id=eur, balance=-100.0, amount_residual=0.0, reconciled=True,
                                     date=str(now.date()))
                tx.create("account.partial.reconcile", debit_move_id=inv_line, credit_move_id=pay_line,
                          amount=100.0, debit_amount_currency=100.0, credit_amount_currency=100.0,
                          company_id=company, company_currency_id=eur, max_date=str(now.date()))
                tx.write("account.payment", odoo_pay, is_reconciled=True,
                         **({"state": "paid"} if odoo.version >= 18 else {}))
                tx.write("account.move", moves[1], payment_state="paid", amount_residual=0.0)
    for i, (amount, days) in enumerate([(250.0, 3), (-40.5, 6), (99.99, 40)], start=1):
        with odoo.transaction(ago(days=days)) as tx:
            tx.create("account.bank.statement.line", amount=amount, date=str(ago(days=days).date()),
                      is_reconciled=False, payment_ref=f"BANK {i}", company_id=company, currency_id=eur,
                      amount_residual=amount)
    with odoo.transaction(ago(minutes=5)) as tx:
        tx.create("account.bank.statement.line", amount=10.0, date=str(now.date()), is_reconciled=True,
                  payment_ref="done", company_id=company, currency_id=eur, amount_residual=0.0)
    with odoo.transaction(ago(hours=2)) as tx:
        for i in range(1, 5):
            vals = {"name": f"SUB{i:03d}", "is_subscription": True,
                    "next_invoice_date": str(now.date() - dt.timedelta(days=2 if i <= 2 else -5))}
            if odoo.version == 16:
                vals["stage_category"] = "progress" if i != 2 else "closed"
            else:
                vals["subscription_state"] = "3_progress" if i != 2 else "6_churn"
            tx.create("sale.order", **vals)
    with odoo.transaction(ago(days=1)) as tx:
        tx.create("ir.cron", cron_name="Bank sync", nextcall=ago(minutes=120))
        tx.create("ir.cron", cron_name="Invoicing", nextcall=ago(minutes=-10))
        tx.create("ir.cron", cron_name="Old", active=False, nextcall=ago(days=9))
    if odoo.queue_job:
        with odoo.transaction(ago(minutes=1)) as tx:
            jobs = [("pending", 90, None, None, None), ("pending", 10, -30, None, None),   # eta 30 min ahead
                    ("failed", 300, None, None, None), ("done", 500, None, None, None),
                    ("started", 120, None, 100, 100), ("enqueued", 20, None, 15, None),
                    ("enqueued", 3, None, 2, None), ("wait_dependencies", 50, None, None, None)]
            for n, (state, age, eta, enq, started) in enumerate(jobs, start=1):
                tx.create("queue.job", uuid=f"u{n}", state=state, date_created=ago(minutes=age), channel="root",
                          eta=ago(minutes=eta) if eta is not None else False,
                          date_enqueued=ago(minutes=enq) if enq is not None else False,
                          date_started=ago(minutes=started) if started is not None else False,
                          company_id=company)


def wizard_and_bank(odoo: FakeOdoo) -> None:
    """Scenario for recorded vectors (tests/fixtures/odoo, `"scenario": "wizard_and_bank"`): invoice 2
    (INV/2026/00002, 200.00) paid in two parts with the register-payment wizard, 10 and 9 minutes ago; invoice 3
    matched with a bank statement line 8 minutes ago; invoice 4 reset to draft and cancelled 7 and 6 minutes ago."""
    inv = sorted(i for i, r in odoo.tables["account.move"].items()
                 if r["move_type"] == "out_invoice" and r["state"] == "posted")
    with odoo.transaction(odoo.now - dt.timedelta(minutes=10)) as tx:
        tx.register_payment(inv[1], 50.0, "PBNK1/2026/00010")
    with odoo.transaction(odoo.now - dt.timedelta(minutes=9)) as tx:
        tx.register_payment(inv[1], 150.0, "PBNK1/2026/00011")
    with odoo.transaction(odoo.now - dt.timedelta(minutes=8)) as tx:
        tx.reconcile_statement(inv[2], 300.0, "SEPA 300")
    with odoo.transaction(odoo.now - dt.timedelta(minutes=7)) as tx:
        tx.reset_to_draft(inv[3])
    with odoo.transaction(odoo.now - dt.timedelta(minutes=6)) as tx:
        tx.cancel(inv[3])


SCENARIOS = {"wizard_and_bank": wizard_and_bank}


class MemoryState:
    """A probe's persisted state in memory (the store's get_state/put_state), for in-process runs."""

    def __init__(self):
        self.data: dict[str, str] = {}

    def get_state(self, key: str) -> str | None:
        return self.data.get(key)

    def put_state(self, key: str, value: str) -> None:
        self.data[key] = value


def in_process_probe(fake: FakeOdoo, clock, transport: httpx.BaseTransport | None = None, **settings):
    """An Odoo probe wired to `fake` through its in-process JSON-RPC door, on a simulated `clock` (property tests,
    benches): no server, no thread, the probe's own code end to end."""
    from probes.odoo import OdooProbe
    from probes.odoo_client import OdooClient
    conf = OdooProbe.Settings(url="http://odoo.test", db=DB, login=LOGIN, password=PASSWORD, protocol="jsonrpc",
                              **settings)
    probe = OdooProbe("erp", conf, MemoryState())
    probe.client = OdooClient("http://odoo.test", DB, LOGIN, PASSWORD, "", "jsonrpc",
                              transport=transport or fake.transport())
    probe.clock = clock
    return probe
