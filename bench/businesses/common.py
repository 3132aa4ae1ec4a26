"""What both independent businesses hand to the bench: events plus ground truth, and the event constructor.

Only the shape of the result is shared; how each business decides what happens is its own (agents.py simulates
customers as agents day by day, tables.py samples transactions from rate tables and walks a Markov chain)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


@dataclass
class Generated:
    events: list[dict] = field(default_factory=list)
    billing_errors: dict[str, str] = field(default_factory=dict)     # correlation ID → injected cause
    transactions: set[str] = field(default_factory=set)              # every billed transaction (correlation ID)
    payments: list[dict] = field(default_factory=list)   # correlation_id, failure_probability, failed, decided_at
    # P(failure | all a scorer can observe at `now`) per open payment, where that differs from the generator's
    # failure_probability (a hidden effect only history reveals, delays that depend on the outcome); None: equal
    observable_bayes: Callable[[dt.datetime], dict[str, float]] | None = None


def cents(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def event(out: Generated, eid: str, typ: str, cid: str, at: dt.datetime, source: str,
          amount: Decimal | None = None, currency: str = "EUR", **attrs) -> None:
    e = {"event_id": eid, "type": typ, "correlation_id": cid,
         "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "source": source,
         "attributes": {k: str(v) for k, v in attrs.items() if v is not None and v != ""}}
    if amount is not None:
        e["amount"], e["currency"] = str(cents(amount)), currency
    out.events.append(e)


def outcome(out: Generated, cid: str, prob: float, failed: bool, settled: dt.datetime, decided: dt.datetime,
            source: str, amount: Decimal, currency: str, eid: str, **attrs) -> None:
    """The reconciliation outcome event, and the payment's truth."""
    event(out, eid, "payment.reconciliation_failed" if failed else "payment.reconciled", cid, decided, source,
          amount, currency, **attrs)
    out.payments.append({"correlation_id": cid, "failure_probability": prob, "failed": failed,
                         "settled_at": settled, "decided_at": decided})
