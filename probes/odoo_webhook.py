"""Odoo's own push: an Automation Rule with the action "Send Webhook Notification" (base_automation, Odoo 17+)
posting to `POST /api/v1/odoo/{probe}/webhook`, mapped to the same canonical events the Odoo probe derives.

What Odoo sends (odoo/odoo 17.0+ `odoo/addons/base/models/ir_actions.py` `_run_action_webhook`): a JSON object
`{"_model": "account.move", "_id": 42, "_action": "<rule name>(#<id>)", <field>: <value>, …}` built from
`record.read(<the rule's fields>, load=None)` and `json.dumps(…, default=str)` — so many2one fields are bare ids,
datetimes are `str(datetime)` ("YYYY-MM-DD HH:MM:SS[.ffffff]", UTC), selections their technical value. The request
has no authentication header (only a URL can be configured): point the rule at a named `odoo` source instead
(`POST /api/v1/sources/<name>?token=<token>`, docs/sources.md: a per-source token, stored hashed, that opens that one
source only; with `probe: <this probe>` it maps exactly as below). This route needs the ingest key in the
Authorization header (a full ingest key in a URL, which it used to take as `?key=`, opened every ingest route). Odoo's
call is sent with a 1 s timeout and not retried, which is why the probe keeps polling: both produce the same
deterministic event ids, so whichever arrives first counts and the other is a duplicate.

The rule a user creates (Settings → Technical → Automation Rules), one per model:
* Model: Journal Entry (`account.move`) — Trigger: "On create and edit" with "When updating: Status" (or
  "State is set to" Posted), apply on `move_type in (out_invoice, out_refund)`; Action: Send Webhook Notification,
  URL `https://revwatch.example/api/v1/sources/<odoo source>?token=<token>`, Fields: `state`, `move_type`,
  `name`, `payment_reference`, `invoice_origin`, `amount_total`, `currency_id`, `partner_id`, `company_id`,
  `create_date`, `write_date`.
* Model: Payment (`account.payment`) — Trigger on Status; Fields: `state`, `payment_type`, `name`,
  `payment_reference`, `memo` (18+) or `ref` (17), `amount`, `currency_id`, `partner_id`, `company_id`,
  `create_date`, `write_date`.
`write_date` is the posting transaction's start (odoo/sql_db.py `Cursor.now()`): the event is dated by it, exactly;
without it, by the time revwatch received the call.
"""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from revwatch.api import ApiError, ctx_of, require
from revwatch.ingest import IngestRefused

from probes.odoo import EVENT_TYPES, OdooProbe

router = APIRouter()
INVOICE_STATES = {"draft": "created", "posted": "posted", "cancel": "cancelled"}


class WebhookError(ValueError):
    """The body is not an Odoo webhook notification revwatch can map; `field` names the culprit."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def _when(value, received: dt.datetime) -> dt.datetime:
    """`str(datetime)` from Odoo (UTC, maybe with microseconds), else the receipt time."""
    if isinstance(value, str) and len(value) >= 19:
        try:
            return dt.datetime.fromisoformat(value[:26]).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    return received


def map_webhook(probe: OdooProbe, body, received: dt.datetime) -> list[dict]:
    """Canonical events for one notification (empty when the state has no milestone, e.g. a draft payment)."""
    if not isinstance(body, dict):
        raise WebhookError("the body must be the JSON object Odoo's webhook action sends", "body")
    model, rid = body.get("_model"), body.get("_id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise WebhookError("'_id' must be the record id (an integer)", "_id")
    state = body.get("state")
    if not isinstance(state, str):
        raise WebhookError("'state' is required: add the Status field to the rule's fields", "state")
    at = _when(body.get("write_date"), received)
    precision = "exact" if at is not received else "webhook_receipt"
    currency = probe.currency_code(body.get("currency_id"))
    if model == "account.move":
        if body.get("move_type", "out_invoice") not in ("out_invoice", "out_refund") or state not in INVOICE_STATES:
            return []
        what = INVOICE_STATES[state]
        typ = EVENT_TYPES["credit_note" if body.get("move_type") == "out_refund" else "invoice"][what]
        when = _when(body.get("create_date"), at) if state == "draft" else at
        attrs = {"invoice_ref": body.get("name"), "payment_reference": body.get("payment_reference"),
                 "invoice_origin": body.get("invoice_origin"), "odoo_id": rid, "via": "webhook"}
        if state != "draft":                       # a milestone (probes/odoo_milestones.py): dated as exactly
            attrs["precision"] = precision
        if state == "posted":
            attrs["posted_at_precision"] = precision
        return [probe.event("account.move", rid, what, typ, probe.move_cid(rid), when,
                            body.get("amount_total") if currency else None, currency, **attrs)]
    if model == "account.payment":
        if body.get("payment_type", "inbound") != "inbound":
            return []
        milestone = {"posted": "posted", "in_process": "posted", "paid": "posted", "cancel": "cancelled",
                     "canceled": "cancelled", "rejected": "cancelled"}.get(state)
        if milestone is None:
            return []
        rec = {"id": rid, **{k: body.get(k) for k in probe.settings.correlation_fields}}
        attrs = {"payment_ref": body.get("name"), "payment_reference": body.get("payment_reference"),
                 "memo": body.get("memo") or body.get("ref"), "odoo_id": rid, "via": "webhook",
                 "precision": precision}
        if milestone == "posted":
            attrs["posted_at_precision"] = precision
        return [probe.event("account.payment", rid, milestone, EVENT_TYPES["payment"][milestone],
                            probe.payment_cid(rec), at, body.get("amount") if currency else None, currency, **attrs)]
    raise WebhookError("'_model' must be account.move or account.payment", "_model")


# -- the route ------------------------------------------------------------------------------------------------------


@router.post("/api/v1/odoo/{probe}/webhook", dependencies=[Depends(require("ingest"))])
async def odoo_webhook(probe: str, request: Request) -> dict:
    """One Odoo webhook notification → canonical events through the collector's intake (deduplicated)."""
    ctx = ctx_of(request)
    service = ctx.probes
    runner = service.runners.get(probe) if service else None
    if runner is None or not isinstance(runner.probe, OdooProbe):
        raise ApiError(404, f"no Odoo probe named {probe!r} is configured", "probe")
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "the body is not JSON", "body") from None
    try:
        events = await run_in_threadpool(map_webhook, runner.probe, body, dt.datetime.now(dt.timezone.utc))
    except WebhookError as e:
        raise ApiError(400, str(e), e.field) from None
    try:
        submitted = await run_in_threadpool(ctx.intake.submit_events, events, True)
    except IngestRefused as e:    # the poller will deliver the same events later; Odoo does not retry
        ctx.metrics.rejected_total.labels("spool_full").inc()
        raise ApiError(503, "spool full: the store is behind; retry later",
                       headers={"Retry-After": e.retry_after}) from None
    if submitted.rejected:
        _, error, field = submitted.rejected[0]
        raise ApiError(400, error, field)
    return {"accepted": submitted.accepted, "duplicates": submitted.duplicates, "types": [e["type"] for e in events]}
