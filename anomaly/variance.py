"""Per-invoice billing variance: what was billed against what the subscription or order said to expect.

Only documented attributes are read (docs/events.md "What billing variance expects"). An *expectation* is a
subscription.activated/renewed/amended or order.booked event; its expected total is its stated `amount` (the
business's own figure, add-ons and discounts included), else the unit-price formula with usage, discounts and
credits; when both exist the formula is only a cross-check reported beside a finding. The invoices of a
transaction are the invoice.created events of the same correlation ID, plus invoices of another correlation ID
that name the same `subscription_id` inside the expectation's period (a billing system that correlates the
invoice differently). credit_note.issued events subtract from the invoice they name (`invoice_ref`) or from their
own transaction. The latest invoice.created per `invoice_ref` is the invoice (a
corrected invoice replaces the first).

Invariant: a transaction is judged on its *net* billed amount per currency, so a credit note or a corrected invoice
that brings the net back to the expected amount resolves the finding, and judging the same events twice gives the
same answer (re-scans are idempotent). The cause is the first hypothesis that reproduces the billed amount exactly
(within rounding): currency, a second invoice, tax missing or doubled, proration missing, another quantity; what
is left with a unit price is a wrong price (its implied unit price is reported), without one an amount mismatch.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

EXPECTATION_TYPES = ("subscription.activated", "subscription.renewed", "subscription.amended", "order.booked")
INVOICE_TYPE = "invoice.created"
CREDIT_TYPE = "credit_note.issued"
CAUSES = ("currency_mismatch", "double_charge", "tax_missing", "tax_double", "proration_missing",
          "quantity_mismatch", "wrong_price", "amount_mismatch")
CAUSE_WORDS = {"currency_mismatch": "billed in another currency", "double_charge": "billed twice",
               "tax_missing": "tax missing", "tax_double": "tax applied twice",
               "proration_missing": "proration not applied", "quantity_mismatch": "wrong quantity",
               "wrong_price": "wrong unit price", "amount_mismatch": "amount differs"}
# What to do about each cause, for the finance lead (`what_to_check` of a finding).
CAUSE_CHECKS = {"currency_mismatch": "Cancel invoice {ref} and issue it again in {currency}.",
                "double_charge": "Credit the duplicate invoice {ref}; {original} is the one to keep.",
                "tax_missing": "Correct the tax on invoice {ref}: credit note and a new invoice with tax.",
                "tax_double": "Correct the tax on invoice {ref}: it was added twice.",
                "proration_missing": "Credit the part of the period invoice {ref} should not have billed.",
                "quantity_mismatch": "Check the quantity on the subscription and correct invoice {ref}.",
                "wrong_price": "Check which price list invoice {ref} used against the subscription's price.",
                "amount_mismatch": "Compare invoice {ref} with the order and correct the difference."}
CENT = Decimal("0.01")
ABS_TOLERANCE = Decimal("0.02")          # cent rounding of a few lines
REL_TOLERANCE = Decimal("0.0001")


def _dec(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


@dataclass
class Event:
    """The fields of a business event the variance check reads."""
    event_id: str
    type: str
    correlation_id: str
    at: dt.datetime
    amount: Decimal | None
    currency: str
    attributes: dict[str, str]

    def attr(self, key: str) -> str:
        return (self.attributes.get(key) or "").strip()


@dataclass
class Expectation:
    """What one expectation event says the period should bill.

    `expected` is the event's stated `amount` when it has one (docs/events.md: the amount expected for the period,
    add-ons, discounts and credits included): the business knows its own pricing better than any formula. The
    unit-price formula (`formula`) is the fallback when no amount is stated, and otherwise a cross-check that is
    reported beside a finding, never an override. `recurring` is the per-period line before tax, proration and
    discounts (unit × quantity); the diagnosis uses it to recognise a wrong quantity or a missed proration
    inside a total that also carries usage or discounts."""
    event: Event
    expected: Decimal
    unit_price: Decimal | None
    quantity: Decimal | None
    proration: Decimal | None
    tax_rate: Decimal | None
    tolerance: Decimal
    formula: Decimal | None = None
    discount_rate: Decimal = Decimal(0)

    @classmethod
    def of(cls, e: Event) -> "Expectation | None":
        """The expectation an event states, or None when it states no amount and no unit price."""
        unit, qty = _dec(e.attr("unit_price")), _dec(e.attr("quantity"))
        prorate, tax = _dec(e.attr("proration")), _dec(e.attr("tax_rate"))
        rate = _dec(e.attr("discount_rate")) or Decimal(0)
        rel = REL_TOLERANCE
        if prorate is not None and 0 < prorate < 1:      # a factor written with k decimals is off by ½·10⁻ᵏ at most
            exponent = prorate.as_tuple().exponent
            assert isinstance(exponent, int), "a finite factor between 0 and 1 has a numeric exponent"
            rel += Decimal(5).scaleb(exponent - 1) / prorate
        formula = None
        if unit is not None:
            net = unit * (qty if qty is not None else 1) * (prorate if prorate is not None else 1) * (1 - rate) \
                - (_dec(e.attr("discount_amount")) or 0) + (_dec(e.attr("usage_amount")) or 0)
            formula = net * (1 + (tax or 0)) - (_dec(e.attr("credit_amount")) or 0)
        expected = e.amount if e.amount is not None else formula
        if expected is None:
            return None
        return cls(e, expected, unit, qty, prorate, tax, max(ABS_TOLERANCE, abs(expected) * rel), formula, rate)

    def line(self, quantity: Decimal | None = None, proration: Decimal | None = None) -> Decimal | None:
        """The recurring line with tax (unit × quantity × proration × (1 − discount rate) × (1 + tax)); None
        without a unit price."""
        if self.unit_price is None:
            return None
        q = quantity if quantity is not None else (self.quantity if self.quantity is not None else Decimal(1))
        p = proration if proration is not None else (self.proration if self.proration is not None else Decimal(1))
        return self.unit_price * q * p * (1 - self.discount_rate) * (1 + (self.tax_rate or 0))

    @property
    def formula_disagrees(self) -> bool:
        return self.formula is not None and abs(self.formula - self.expected) > self.tolerance

    @property
    def currency(self) -> str:
        return self.event.currency


@dataclass
class Variance:
    """One invoice (or transaction) that does not bill what was expected."""
    correlation_id: str
    invoice_ref: str
    cause: str
    expected: Decimal
    billed: Decimal
    currency: str
    expected_currency: str
    customer_id: str
    subscription_id: str
    plan: str
    at: dt.datetime
    reasons: list[str] = field(default_factory=list)
    original_invoice_ref: str = ""       # the transaction's first invoice, when the flagged one is another
    expected_source: str = "stated"      # stated (the event's amount) or formula (unit price × quantity …)
    formula: Decimal | None = None       # the unit-price cross-check, when it could be computed

    @property
    def difference(self) -> Decimal:
        return self.billed - self.expected

    @property
    def score(self) -> float:
        """1 for a wrong currency or a second invoice; else grows with the relative size of the difference."""
        if self.cause in ("currency_mismatch", "double_charge") or not self.expected:
            return 1.0
        rel = float(abs(self.difference / self.expected))
        return round(0.5 + 0.5 * min(1.0, rel / 0.2), 4)

    def details(self) -> dict[str, str]:
        return {"cause": self.cause, "expected": _money(self.expected), "billed": _money(self.billed),
                "difference": _money(self.difference), "currency": self.currency,
                "expected_currency": self.expected_currency, "customer_id": self.customer_id,
                "subscription_id": self.subscription_id, "plan": self.plan, "invoice_ref": self.invoice_ref,
                "original_invoice_ref": self.original_invoice_ref, "expected_from": self.expected_source,
                "money_at_risk": _money(abs(self.billed if self.cause == "currency_mismatch" else self.difference)),
                "what_to_check": CAUSE_CHECKS[self.cause].format(ref=self.invoice_ref or "?",
                                                                 currency=self.expected_currency,
                                                                 original=self.original_invoice_ref or "the first"),
                **({"formula_expected": _money(self.formula)} if self.formula is not None else {})}


def _money(x: Decimal) -> str:
    return str(x.quantize(CENT))


@dataclass
class Transaction:
    """An expectation with the invoices and credit notes that belong to it."""
    expectation: Expectation
    invoices: dict[str, Event] = field(default_factory=dict)      # invoice_ref -> latest invoice.created
    credits: list[Event] = field(default_factory=list)


def group(events: list[Event]) -> list[Transaction]:
    """Transactions with at least one invoice or credit note, from events of any order (duplicate event ids
    ignored)."""
    seen: set[str] = set()
    uniq = []
    for e in sorted(events, key=lambda e: (e.at, e.event_id)):
        if e.event_id not in seen:
            seen.add(e.event_id)
            uniq.append(e)
    latest_exp: dict[str, Expectation] = {}
    by_sub: dict[str, list[Expectation]] = defaultdict(list)
    for e in uniq:
        if e.type in EXPECTATION_TYPES and (x := Expectation.of(e)) is not None:
            latest_exp[e.correlation_id] = x              # a later expectation of a transaction supersedes
    for x in latest_exp.values():
        if sub := x.event.attr("subscription_id"):
            by_sub[sub].append(x)
    txs = {cid: Transaction(x) for cid, x in latest_exp.items()}
    owner_of_ref: dict[str, str] = {}
    for e in uniq:
        if e.type != INVOICE_TYPE or e.amount is None:
            continue
        owner = e.correlation_id if e.correlation_id in txs else _by_subscription(by_sub, e)
        ref = e.attr("invoice_ref") or e.event_id
        if owner is None:
            continue
        owner = owner_of_ref.setdefault(ref, owner)
        txs[owner].invoices[ref] = e                       # in time order: the last one is the corrected invoice
    for e in uniq:
        if e.type != CREDIT_TYPE or e.amount is None:
            continue
        owner = owner_of_ref.get(e.attr("invoice_ref")) or (e.correlation_id if e.correlation_id in txs else None)
        if owner is not None:
            txs[owner].credits.append(e)
    # A transaction is judged once its documents are there: its invoices, or — for an expectation of a credit (a
    # downgrade states a negative amount, docs/events.md) — its credit notes alone. A charge still waiting for its
    # invoice is pending, not short, even when a credit note under the same correlation ID came first (a refund of
    # an earlier period, a credit applied ahead of the renewal's invoice).
    return [t for t in txs.values() if t.invoices or (t.credits and t.expectation.expected < 0)]


def _by_subscription(by_sub: dict[str, list[Expectation]], inv: Event) -> str | None:
    """The expectation of the invoice's subscription whose period contains the invoice (or the day before it)."""
    best = None
    for x in by_sub.get(inv.attr("subscription_id"), []):
        start = x.event.at
        end = _period_end(x) or start + dt.timedelta(days=2)
        if start - dt.timedelta(days=1) <= inv.at < end and (best is None or x.event.at > best.event.at):
            best = x
    return best.event.correlation_id if best else None


def _period_end(x: Expectation) -> dt.datetime | None:
    try:
        d = dt.date.fromisoformat(x.event.attr("period_end")[:10])
    except ValueError:
        return None
    return dt.datetime.combine(d, dt.time(), tzinfo=dt.timezone.utc)


def _amount(e: Event) -> Decimal:
    """A transaction's invoice or credit note: `transactions` keeps only events that state an amount."""
    assert e.amount is not None, "transactions hold only events with an amount"
    return e.amount


def judge(t: Transaction) -> Variance | None:
    """The variance of one transaction, or None when its net billed amount is what was expected."""
    x = t.expectation
    documents = list(t.invoices.values()) or t.credits             # a downgrade has only its credit note
    first = min(documents, key=lambda e: e.at)
    E, cur = x.expected, x.currency or first.currency      # an expectation without a currency cannot disagree
    net: dict[str, Decimal] = defaultdict(Decimal)
    for inv in t.invoices.values():
        net[inv.currency or cur] += _amount(inv)
    for c in t.credits:
        net[c.currency or cur] -= abs(_amount(c))
    others = {k: v for k, v in net.items() if k != cur and abs(v) > x.tolerance}
    latest = max(documents, key=lambda e: e.at)
    billed_here = net.get(cur, Decimal(0))
    if not others and abs(billed_here - E) <= x.tolerance:
        return None

    def finding(cause: str, billed: Decimal, currency: str, inv: Event, *reasons: str) -> Variance:
        ev = x.event
        ref = inv.attr("invoice_ref") or ""
        original = first.attr("invoice_ref") or ""
        notes = list(reasons)
        if x.formula_disagrees:
            assert x.formula is not None, "formula_disagrees implies a formula"
            notes.append(f"the renewal states {_money(E)} {cur}; unit price × quantity would give "
                         f"{_money(x.formula)} (the stated amount is what counts)")
        return Variance(ev.correlation_id, ref, cause, E, billed, currency, cur,
                        inv.attr("customer_id") or ev.attr("customer_id"),
                        ev.attr("subscription_id") or inv.attr("subscription_id"), ev.attr("plan") or inv.attr("plan"),
                        latest.at, notes, original if original != ref else "",
                        "stated" if ev.amount is not None else "formula", x.formula)

    ref = latest.attr("invoice_ref") or "?"
    if others:
        other, billed = max(others.items(), key=lambda kv: abs(kv[1]))
        inv = max((i for i in documents if (i.currency or cur) == other), key=lambda e: e.at, default=latest)
        same = "the same number" if abs(billed - E) <= x.tolerance else f"{_money(billed)}"
        return finding("currency_mismatch", billed, other, inv,
                       f"invoice {inv.attr('invoice_ref') or '?'} is in {other} but {_money(E)} {cur} was expected "
                       f"({same} in the wrong currency)")
    B = billed_here
    live = [i for i in t.invoices.values() if (i.currency or cur) == cur]
    if len(live) >= 2 and not t.credits and any(abs(_amount(i) - E) <= x.tolerance for i in live):
        dup = max(live, key=lambda e: e.at)
        first = min(live, key=lambda e: e.at)
        return finding("double_charge", B, cur, dup,
                       f"invoice {dup.attr('invoice_ref') or '?'} bills {_money(_amount(dup))} {cur} again for the "
                       "same "
                       f"transaction (already invoiced as {first.attr('invoice_ref') or '?'}); "
                       f"{_money(B)} billed against {_money(E)} expected")
    head = f"invoice {ref} totals {_money(B)} {cur} but {_money(E)} {cur} was expected (difference {B - E:+.2f})"
    tax, p, q = x.tax_rate or Decimal(0), x.proration, x.quantity

    def close(amount: Decimal) -> bool:
        return abs(B - amount) <= x.tolerance

    line = x.line()
    if tax > 0 and close(E / (1 + tax)):
        return finding("tax_missing", B, cur, latest, head, f"the {_pct(tax)} tax was not added")
    if tax > 0 and close(E * (1 + 2 * tax) / (1 + tax)):
        return finding("tax_double", B, cur, latest, head, f"the {_pct(tax)} tax was applied twice")
    if p is not None and 0 < p < 1 and (close(E / p) or line is not None and close(E + line * (1 - p) / p)):
        return finding("proration_missing", B, cur, latest, head,
                       f"billed for the full period instead of the prorated share {p}")
    if q is not None and q > 0 and E:
        per_unit = line / q if line is not None and line else E / q      # a seat's share of the total
        extra = (B - E) / per_unit
        whole = extra.to_integral_value()
        if whole != 0 and q + whole >= 1 and abs(B - E - whole * per_unit) <= x.tolerance * max(Decimal(1),
                                                                                            abs(whole) / q):
            return finding("quantity_mismatch", B, cur, latest, head, f"billed for quantity {q + whole} instead of {q}")
    if tax > 0 and close(E * (1 + tax)):
        return finding("tax_double", B, cur, latest, head, f"the {_pct(tax)} tax was applied twice (compounded)")
    if len(live) >= 2 and not t.credits:
        return finding("double_charge", B, cur, max(live, key=lambda e: e.at), head,
                       f"{len(live)} invoices for one transaction")
    if x.unit_price is not None and line:
        implied = x.unit_price * (1 + (B - E) / line)      # the unit price that explains the difference
        return finding("wrong_price", B, cur, latest, head,
                       f"implied unit price {_money(implied)} instead of {_money(x.unit_price)}")
    return finding("amount_mismatch", B, cur, latest, head)


def _pct(r: Decimal) -> str:
    return f"{(r * 100).normalize():f} %"


def detect(events: list[Event]) -> tuple[list[Variance], list[str]]:
    """(variances, correlation IDs of every transaction judged) for a set of events."""
    txs = group(events)
    return [v for t in txs if (v := judge(t)) is not None], [t.expectation.event.correlation_id for t in txs]
