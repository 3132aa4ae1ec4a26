"""What each section of the Odoo probe reads, per Odoo version, and the start-up check that decides which sections
can run on this database for this user.

The check asks `ir.model` which models are installed, then `fields_get` for each model a section needs (fields_get
checks no model access, `odoo/models.py`), and disables a section whose model is missing or whose field is unknown
— with one message naming the model, the field and the Odoo version — instead of failing every run later. Access
errors cannot be seen this way (the ACL is checked on read); they disable a section when its first read fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field


def requirements(major: int) -> dict[str, dict[str, list[str]]]:
    """Section -> model -> stored fields the section reads on Odoo `major`."""
    payment_common = ["state", "amount", "currency_id", "company_id", "partner_id", "payment_type", "is_reconciled",
                      "is_matched", "payment_reference", "move_id", "name", "date", "create_date", "write_date",
                      "message_ids"]
    payments = {"account.payment": payment_common + (["memo"] if major >= 18 else ["ref"])}
    if major < 18:                  # state lives on the move (_inherits): posting changes the move, not the payment
        payments["account.move"] = ["payment_id", "state", "write_date", "message_ids"]
    link = "field" if major == 16 else "field_id"
    return {
        "invoices": {"account.move": ["name", "state", "move_type", "create_date", "write_date", "amount_total",
                                      "currency_id", "company_id", "partner_id", "ref", "payment_reference",
                                      "invoice_origin", "payment_state", "message_ids"]},
        "posting_time": {"mail.tracking.value": [link, "old_value_char", "new_value_char", "mail_message_id",
                                                 "create_date"], "res.lang": ["code", "active"]},
        "payments": payments,
        "reconciliation": {"account.partial.reconcile": ["debit_move_id", "credit_move_id", "amount", "max_date",
                                                         "company_id", "company_currency_id", "create_date",
                                                         "write_date"],
                           "account.move.line": ["move_id", "payment_id"],
                           "account.move": ["name", "move_type", "statement_line_id"],
                           "account.bank.statement.line": ["date", "payment_ref"]},
        "settlements": {"account.payment": ["state", "is_matched", "amount", "date", "company_id", "currency_id"],
                        "account.bank.statement.line": ["is_reconciled", "amount_residual", "date", "company_id",
                                                        "currency_id"]},
        "receivables": {"account.move": ["state", "move_type", "amount_residual", "payment_state", "company_id",
                                         "currency_id", "create_date"]},
        "subscriptions": {"sale.order": ["is_subscription", "next_invoice_date",
                                         "stage_category" if major == 16 else "subscription_state"]},
        "crons": {"ir.cron": ["active", "nextcall", "cron_name"]},
        "queue_jobs": {"queue.job": ["state", "date_created", "eta", "date_enqueued", "date_started", "channel"]},
    }


HINTS = {"queue.job": "OCA queue_job is not installed", "sale.order": "sale_subscription is not installed",
         "mail.tracking.value": "mail is not installed"}


@dataclass
class SchemaReport:
    """Sections that cannot run, with the reason (model or field missing on this version)."""
    version: str
    disabled: dict[str, str] = field(default_factory=dict)
    fields: dict[str, dict[str, dict]] = field(default_factory=dict)      # model -> fields_get answer


def check_schema(client, major: int, version: str) -> SchemaReport:
    """Run the start-up check (see module docstring)."""
    from probes.odoo_client import OdooError
    reqs = requirements(major)
    report = SchemaReport(version)
    models = sorted({m for need in reqs.values() for m in need})
    try:
        installed = {r["model"] for r in client.search_read("ir.model", [("model", "in", models)], ["model"])}
    except OdooError as e:
        if e.auth_error or e.gated:
            raise
        installed = set(models)                 # cannot list models: let fields_get tell
    for model in models:
        if model not in installed:
            continue
        try:
            report.fields[model] = client.fields_get(model, attributes=["type", "string", "selection", "relation",
                                                                        "store"])
        except OdooError as e:
            if e.auth_error or e.gated:
                raise
            if not e.missing_model:
                report.fields[model] = {}        # unknown: the section's first read will tell
                continue
    for section, need in reqs.items():
        for model, fields in need.items():
            if model not in report.fields:
                hint = HINTS.get(model, "")
                report.disabled[section] = (f"model {model} does not exist on Odoo {version}"
                                            + (f" ({hint})" if hint else ""))
                break
            known = report.fields[model]
            missing = [f for f in fields if known and f not in known]
            if missing:
                report.disabled[section] = (f"field {model}.{missing[0]} does not exist on Odoo {version}"
                                            + (f" (nor {', '.join(missing[1:])})" if missing[1:] else ""))
                break
    return report
