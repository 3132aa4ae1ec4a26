"""Which business milestones a version of an Odoo record reaches, how many times, and when — the pure part of the
Odoo probe's state events (probes/odoo.py reads the records and emits the events).

A milestone is a *class* of values of a watched selection field: an invoice is `posted` (state posted) or
`cancelled` (state cancel); its payment status is `paid` (payment_state in_payment or paid — in_payment → paid is
the bank match of a payment already counted, not a second payment), `partial` or `reversed`; a payment is `posted`
(16/17: its move posted; 18+: in_process or paid) or `cancelled` (cancel, canceled, rejected). A milestone *occurs*
when the class of the field's value changes into it; the n-th occurrence for one record has the event id suffix
`<milestone>` (n = 1) or `<milestone>:<n>` — so a reset to draft and a second posting is a second event, and
re-reading the same history gives the same ids.

Two sources, in this order:
* `mail.tracking.value` (Odoo writes one per tracked field change in the changing transaction, dated by its start,
  `addons/mail/models/mail_thread.py` `_message_track`; `state` and `payment_state` of account.move are tracked,
  `addons/account/models/account_move.py`; account.payment's `state` on 18+): every occurrence with its exact time
  (`precision=exact`), ordinals from the whole history.
* the polled versions themselves, when tracking is not readable (or a change was made with tracking disabled): the
  milestones of the current version that the previously delivered version did not have, dated within the interval
  `[occurred_after, seen_at]` (`precision=poll`) — intermediate states between two polls cannot be seen, and
  without tracking the ordinal is 1 (a re-posting after a reset to draft is only told apart with tracking).
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

# model -> field -> value -> milestone (values not listed belong to no milestone: draft, not_paid, …)
CLASSES: dict[str, dict[str, dict[str, str]]] = {
    "account.move": {"state": {"posted": "posted", "cancel": "cancelled"},
                     "payment_state": {"in_payment": "paid", "paid": "paid", "partial": "partial",
                                       "reversed": "reversed"}},
    "account.payment": {"state": {"posted": "posted", "in_process": "posted", "paid": "posted",
                                  "cancel": "cancelled", "canceled": "cancelled", "rejected": "cancelled"}},
}
FIELDS = {model: list(fields) for model, fields in CLASSES.items()}


def classify(model: str, field: str, value) -> str | None:
    return CLASSES[model].get(field, {}).get(value) if isinstance(value, str) else None


def prefix(model: str, row: dict) -> str:
    """The readable part of a version token: the watched selection values, e.g. `posted/partial`."""
    return "/".join(str(row.get(f) or "") for f in FIELDS[model])


def parse_prefix(model: str, token: str | None) -> dict[str, str] | None:
    """The selection values a token was made from (`prefix`), or None when unknown."""
    if not token or "#" not in token:
        return None
    values = token.split("#", 1)[0].split("/")
    return dict(zip(FIELDS[model], values)) if len(values) == len(FIELDS[model]) else None


def current(model: str, row: dict) -> set[str]:
    return {m for f in FIELDS[model] if (m := classify(model, f, row.get(f)))}


def reached(model: str, before: dict[str, str] | None, row: dict) -> list[str]:
    """Milestones of `row` its field did not already have in `before` (all of them when `before` is unknown)."""
    out = []
    for f in FIELDS[model]:
        m = classify(model, f, row.get(f))
        if m and (before is None or classify(model, f, before.get(f)) != m):
            out.append(m)
    return out


@dataclass(frozen=True)
class Change:
    """One tracked change of a watched field (values already mapped back from labels)."""
    field: str
    old: str | None
    new: str | None
    at: dt.datetime
    order: int                 # mail.tracking.value id: the order of changes


@dataclass(frozen=True)
class Occurrence:
    milestone: str
    n: int                     # 1 for the first time the record reached it
    at: dt.datetime            # exact time (the changing transaction's start)

    @property
    def suffix(self) -> str:
        return self.milestone if self.n == 1 else f"{self.milestone}:{self.n}"


def occurrences(model: str, changes: list[Change]) -> list[Occurrence]:
    """Every milestone occurrence in a record's tracked history, oldest first, numbered per milestone."""
    counts: Counter[str] = Counter()
    out = []
    for c in sorted(changes, key=lambda c: c.order):
        m = classify(model, c.field, c.new)
        if m and m != classify(model, c.field, c.old):
            counts[m] += 1
            out.append(Occurrence(m, counts[m], c.at))
    return out


def poll_time(written: dt.datetime, after: dt.datetime, seen: dt.datetime) -> dt.datetime:
    """When a change seen by poll happened, as well as it can be told: its transaction's start (`write_date`),
    moved into `[after, seen]` — a transaction that began before the previous poll but committed after it became
    visible after `after`, and Odoo's clock may run ahead of ours."""
    return min(max(written, after), seen)
