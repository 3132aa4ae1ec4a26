"""A subscription business, simulated: customers, plans, renewals, amendments with proration, cancellations,
invoices, gateway payments, Odoo postings, bank reconciliation, CRM→Odoo sync and webhook deliveries.

Deterministic: the same seed, start and sequence of `advance()` calls give the same events, spans and ground
truth. Correlation IDs follow one business transaction (`ren_…` a renewal and its invoice, `pay_…` a payment),
and attributes (`invoice_ref`, `subscription_id`, `customer_id`) link transactions the way a real integration
carries them. Faults (revwatch.sim.faults) change what happens and are written to the ground truth.
"""
from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from revwatch.sim.faults import VARIANCE_CAUSES, Fault

PLANS = {"basic": (Decimal("29.00"), "month"), "pro": (Decimal("99.00"), "month"),
         "team": (Decimal("249.00"), "month"), "enterprise": (Decimal("9990.00"), "year")}
GATEWAYS = ("stripe", "adyen")
CENT = Decimal("0.01")
CURRENCIES = ("EUR", "EUR", "USD", "GBP")
TAX_RATES = (Decimal("0.19"), Decimal("0.20"), Decimal("0"), Decimal("0.21"), Decimal("0.07"))
# True reconciliation-failure probability of a payment by what is wrong with it (ground truth `failure_probability`):
# Odoo's matching still succeeds now and then (an accountant matches by hand, an amount happens to be unique).
RECON_FAILURE_PROBABILITY = {"": 0.01, "missing_reference": 0.92, "partial_payment": 0.85,
                             "fx_fee_difference": 0.75, "duplicate_payment": 0.95, "malformed_reference": 0.8,
                             "fee_netting": 0.6, "unknown_partner": 0.9}
MESSY_CUSTOMER_FAILURE = 0.35     # customers who always type their own payment reference (every 13th customer)


def money(x: Decimal) -> str:
    return str(x.quantize(CENT, rounding=ROUND_HALF_UP))


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SpanSpec:
    service: str
    name: str
    start: dt.datetime
    end: dt.datetime
    attributes: dict
    error: str | None = None
    kind: str = "client"
    children: list["SpanSpec"] = field(default_factory=list)


@dataclass
class Customer:
    id: str
    plan: str
    gateway: str
    quantity: int
    subscription_id: str
    renewals: int = 0
    active: bool = True
    currency: str = "EUR"
    tax_rate: Decimal = Decimal("0")
    messy: bool = False


class Business:
    """The simulated company; call `advance(until)` to get everything that happened up to `until`."""

    def __init__(self, seed: int, start: dt.datetime, customers: int = 300, rate_per_hour: float = 120.0,
                 faults: list[Fault] | None = None, run: str = ""):
        """`run` prefixes every id and reference this business makes (`evt_<run>0000001`, `INV/2026/<run>000042`),
        so two runs on one store never reuse an id for other content (the store would refuse them as conflicts);
        the same seed, start and run make the same ids and content again (recognised as duplicates)."""
        self.run = run
        self.rng = random.Random(seed)
        self.start = start
        self.rate = rate_per_hour
        self.faults = faults or []
        self.clock = start
        self._seq = itertools.count(1)
        self._heap: list = []
        self.truth: list[dict] = []
        # per payment: its true failure probability and what happened (bench/anomaly_eval.py's Bayes-optimal AUC);
        # outcomes draw from their own generator so the rest of the business is the same as without them
        self.payments: list[dict] = []
        self._recon_rng = random.Random(seed * 1_000_003 + 17)
        self.customers = [self._new_customer() for _ in range(customers)]
        self._next_arrival = start + self._gap()

    # -- helpers ------------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self.run}{next(self._seq):07d}"

    def _gap(self) -> dt.timedelta:
        return dt.timedelta(hours=self.rng.expovariate(self.rate))

    def _fault(self, name: str, at: dt.datetime) -> Fault | None:
        for f in self.faults:
            if f.name == name and f.active(at) and self.rng.random() < f.rate:
                return f
        return None

    def _mark(self, fault: Fault, cid: str, at: dt.datetime, effect: str, **extra) -> None:
        self.truth.append({"fault": fault.name, "correlation_id": cid, "at": iso(at), "effect": effect, **extra})

    def _lognormal(self, median_s: float, sigma: float) -> dt.timedelta:
        return dt.timedelta(seconds=median_s * math.exp(self.rng.gauss(0, sigma)))

    def _new_customer(self) -> Customer:
        n = next(self._seq)
        plan = self.rng.choices(list(PLANS), weights=(5, 3, 1.5, 0.5))[0]
        return Customer(f"C-{self.run}{n:05d}", plan, self.rng.choice(GATEWAYS),
                        self.rng.choice((1, 1, 1, 2, 5, 10)), f"SUB-{self.run}{n:05d}",
                        currency=CURRENCIES[n % len(CURRENCIES)], tax_rate=TAX_RATES[n % len(TAX_RATES)],
                        messy=n % 13 == 0)

    def _event(self, typ: str, cid: str, at: dt.datetime, source: str, journey: str = "", amount: Decimal | None = None,
               event_id: str | None = None, currency: str = "EUR", **attrs) -> dict:
        ev = {"event_id": event_id or self._id("evt"), "type": typ, "correlation_id": cid, "occurred_at": iso(at),
              "source": source, "attributes": {k: str(v) for k, v in attrs.items() if v is not None}}
        if journey:
            ev["journey"] = journey
        if amount is not None:
            ev["amount"], ev["currency"] = money(amount), currency
        return ev

    def _emit(self, at: dt.datetime, kind: str, item) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, item))

    # -- the public API -----------------------------------------------------------------------------------
    def advance(self, until: dt.datetime) -> tuple[list[dict], list[SpanSpec]]:
        """Run the business up to `until`; returns (events, spans) that happened by then, in time order."""
        while self._next_arrival < until:
            self._transaction(self._next_arrival)
            self._next_arrival += self._gap()
        events: list[dict] = []
        spans: list[SpanSpec] = []
        while self._heap and self._heap[0][0] <= until:
            _, _, kind, item = heapq.heappop(self._heap)
            (events if kind == "event" else spans).append(item)
        self.clock = until
        return events, spans

    @property
    def scheduled(self) -> int:
        """Items that will happen after the clock (a posting still on its way, …)."""
        return len(self._heap)

    # -- transactions -------------------------------------------------------------------------------------
    def _transaction(self, t0: dt.datetime) -> None:
        kind = self.rng.choices(("renewal", "order", "activation", "amendment", "cancellation"),
                                weights=(50, 30, 8, 7, 5))[0]
        active = [c for c in self.customers if c.active]
        if kind == "activation" or not active:
            return self._activation(t0)
        c = self.rng.choice(active)
        if kind == "renewal":
            self._renewal(c, t0)
        elif kind == "order":
            self._order(c, t0)
        elif kind == "amendment":
            self._amendment(c, t0)
        else:
            self._cancellation(c, t0)

    def _activation(self, t0: dt.datetime) -> None:
        c = self._new_customer()
        self.customers.append(c)
        cid = self._id("cus")
        self._emit(t0, "event", self._event("customer.created", cid, t0, "crm", customer_id=c.id))
        sync_at = t0 + self._lognormal(20, 0.5)
        fault = self._fault("crm_sync_errors", sync_at)
        span = SpanSpec("crm-sync", "odoo res.partner create", sync_at, sync_at + self._lognormal(0.3, 0.4),
                        {"correlation.id": cid, "customer_id": c.id, "odoo.model": "res.partner"},
                        error="odoo.exceptions.ValidationError: VAT number invalid" if fault else None)
        self._emit(sync_at, "span", span)
        if fault:
            self._mark(fault, cid, sync_at, "crm sync call failed")
            return
        price, _ = PLANS[c.plan]
        self._emit(sync_at + dt.timedelta(seconds=5), "event", self._event(
            "subscription.activated", cid, sync_at + dt.timedelta(seconds=5), "billing",
            amount=price * c.quantity * (1 + c.tax_rate), currency=c.currency, subscription_id=c.subscription_id,
            customer_id=c.id, plan=c.plan, unit_price=money(price), quantity=c.quantity, tax_rate=str(c.tax_rate)))

    def _expect_and_invoice(self, c: Customer, cid: str, t0: dt.datetime, typ: str, source: str, journey: str,
                            unit: Decimal, qty: int, proration: Decimal | None = None, plan: str | None = None,
                            **attrs) -> None:
        """The expectation event (docs/events.md attributes) and the invoice that should match it, faults applied."""
        factor = proration if proration is not None else Decimal(1)
        expected = unit * qty * factor * (1 + c.tax_rate)
        prorated = str(proration.quantize(Decimal("0.0001"))) if proration is not None else None
        self._emit(t0, "event", self._event(
            typ, cid, t0, source, journey, expected, currency=c.currency, subscription_id=c.subscription_id,
            customer_id=c.id, plan=plan or c.plan, unit_price=money(unit), quantity=qty, proration=prorated,
            tax_rate=str(c.tax_rate), **attrs))
        billed, currency, fault = expected, c.currency, None
        for name in VARIANCE_CAUSES:
            if name == "proration_missing" and proration is None or name.startswith("tax_") and not c.tax_rate:
                continue            # nothing to get wrong
            fault = self._fault(name, t0)
            if fault:
                break
        if fault and fault.name == "price_misconfig":
            billed = (unit * Decimal("1.18")).quantize(CENT) * qty * factor * (1 + c.tax_rate)  # an old price list
        elif fault and fault.name == "tax_missing":
            billed = unit * qty * factor
        elif fault and fault.name == "tax_double":
            billed = unit * qty * factor * (1 + 2 * c.tax_rate)
        elif fault and fault.name == "proration_missing":
            billed = unit * qty * (1 + c.tax_rate)
        elif fault and fault.name == "quantity_mismatch":
            billed = unit * (qty + 1) * factor * (1 + c.tax_rate)
        elif fault and fault.name == "currency_mismatch":
            currency = next(x for x in ("EUR", "USD", "GBP") if x != c.currency)
        inv = self._invoice(c, cid, t0, billed, journey, proration=prorated, currency=currency)
        if fault:
            self._mark(fault, cid, t0, f"invoice billed with {VARIANCE_CAUSES[fault.name].replace('_', ' ')}",
                       cause=VARIANCE_CAUSES[fault.name], invoice_ref=inv, expected=money(expected),
                       billed=money(billed), currency=currency, expected_currency=c.currency)
            if fault.name == "double_charge":
                again = self._invoice(c, cid, t0 + dt.timedelta(minutes=5), billed, journey, proration=prorated,
                                      currency=currency)
                self.truth[-1].update(invoice_ref=again, first_invoice_ref=inv)

    def _renewal(self, c: Customer, t0: dt.datetime) -> None:
        cid = self._id("ren")
        c.renewals += 1
        price, period = PLANS[c.plan]
        p_end = t0 + (dt.timedelta(days=30) if period == "month" else dt.timedelta(days=365))
        self._expect_and_invoice(c, cid, t0, "subscription.renewed", "billing", "renewal_to_invoice", price,
                                 c.quantity, period_start=t0.date().isoformat(), period_end=p_end.date().isoformat())

    def _invoice(self, c: Customer, cid: str, t0: dt.datetime, amount: Decimal, journey: str,
                 proration: str | None = None, currency: str | None = None) -> str:
        inv = f"INV/{t0.year}/{self.run}{next(self._seq):06d}"
        cur = currency or c.currency
        amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
        created = t0 + self._lognormal(15, 0.5)
        self._emit(created, "event", self._event("invoice.created", cid, created, "billing", journey, amount,
                                                 currency=cur, invoice_ref=inv, subscription_id=c.subscription_id,
                                                 customer_id=c.id, plan=c.plan, proration=proration))
        posted = created + self._lognormal(120, 0.6)
        backlog = self._fault("queue_backlog", posted)
        if backlog:
            posted += dt.timedelta(minutes=self.rng.uniform(60, 180))
            self._mark(backlog, cid, posted, "invoice posting delayed by the Odoo job queue backlog")
        self._emit(posted, "event", self._event("invoice.posted", cid, posted, "odoo", journey, amount,
                                                currency=cur, invoice_ref=inv, customer_id=c.id))
        self._emit(posted, "span", SpanSpec("odoo", "account.move action_post", posted,
                                            posted + self._lognormal(0.25, 0.3),
                                            {"correlation.id": cid, "odoo.model": "account.move",
                                             "invoice_ref": inv}))
        sent = posted + self._lognormal(60, 0.3)
        self._emit(sent, "event", self._event("invoice.sent", cid, sent, "billing", journey, invoice_ref=inv))
        self._payment(c, inv, amount, sent + self._lognormal(600, 1.0), currency=cur)
        return inv

    def _order(self, c: Customer, t0: dt.datetime) -> None:
        cid = self._id("ord")
        addon = Decimal(self.rng.choice(("15.00", "49.00", "120.00")))
        self._expect_and_invoice(c, cid, t0, "order.booked", "crm", "", addon, 1, plan="addon")

    def _amendment(self, c: Customer, t0: dt.datetime) -> None:
        cid = self._id("amd")
        old_price, _ = PLANS[c.plan]
        c.plan = self.rng.choice([p for p in PLANS if p != c.plan and PLANS[p][1] == "month"] or ["pro"])
        new_price, _ = PLANS[c.plan]
        factor = (Decimal(self.rng.randint(1, 29)) / Decimal(30)).quantize(Decimal("0.0001"))
        unit = new_price - old_price          # the upgrade's price per seat for the rest of the period
        if unit > 0:
            self._expect_and_invoice(c, cid, t0, "subscription.amended", "billing", "", unit, c.quantity,
                                     proration=factor)
            return
        credit = -unit * c.quantity * factor * (1 + c.tax_rate)
        self._emit(t0, "event", self._event(
            "subscription.amended", cid, t0, "billing", amount=-credit, currency=c.currency,
            subscription_id=c.subscription_id, customer_id=c.id, plan=c.plan, unit_price=money(unit),
            quantity=c.quantity, proration=str(factor), tax_rate=str(c.tax_rate)))
        if credit > 0:
            at = t0 + self._lognormal(60, 0.5)
            self._emit(at, "event", self._event("credit_note.issued", cid, at, "odoo", amount=credit,
                                                currency=c.currency, customer_id=c.id,
                                                subscription_id=c.subscription_id))

    def _cancellation(self, c: Customer, t0: dt.datetime) -> None:
        c.active = False
        cid = self._id("can")
        self._emit(t0, "event", self._event("subscription.cancelled", cid, t0, "billing",
                                            subscription_id=c.subscription_id, customer_id=c.id, plan=c.plan))
        if self.rng.random() < 0.3:
            at = t0 + self._lognormal(3600, 0.5)
            price, _ = PLANS[c.plan]
            self._emit(at, "event", self._event("refund.issued", cid, at, c.gateway, amount=price / 2,
                                                customer_id=c.id, gateway=c.gateway))

    def _payment(self, c: Customer, inv: str, amount: Decimal, received: dt.datetime, duplicate_of: str = "",
                 currency: str | None = None) -> None:
        cid = self._id("pay")
        currency = currency or c.currency
        fee = (amount * Decimal("0.014") + Decimal("0.25")).quantize(CENT)
        ref: str | None = inv
        paid, customer, reason = amount, c.id, ""
        for name, effect in (("recon_missing_ref", "missing_reference"), ("recon_partial", "partial_payment"),
                             ("recon_fx_fee", "fx_fee_difference"), ("recon_malformed_ref", "malformed_reference"),
                             ("recon_fee_netting", "fee_netting"), ("recon_unknown_partner", "unknown_partner")):
            fault = self._fault(name, received)
            if fault:
                reason = effect
                if name == "recon_missing_ref":
                    ref = None
                elif name == "recon_partial":
                    paid = (amount * Decimal("0.6")).quantize(CENT)
                elif name == "recon_fx_fee":
                    paid = (amount * Decimal("0.97")).quantize(CENT)
                elif name == "recon_malformed_ref":
                    ref = inv.replace("/", " ").lower()[::-1]
                elif name == "recon_fee_netting":
                    paid = amount - fee
                else:
                    customer = f"C-U{cid[4:]}"
                self._mark(fault, cid, received, effect.replace("_", " "), invoice_ref=inv)
                break
        if duplicate_of:
            reason = "duplicate_payment"
        probability = RECON_FAILURE_PROBABILITY[reason]
        if not reason and c.messy:
            probability = MESSY_CUSTOMER_FAILURE
        failed = self._recon_rng.random() < probability
        self.payments.append({"correlation_id": cid, "payment_ref": f"PAY/{cid[4:]}", "invoice_ref": inv,
                              "cause": reason, "failure_probability": probability, "failed": failed})
        base: dict[str, Any] = dict(payment_ref=f"PAY/{cid[4:]}", invoice_ref=ref, customer_id=customer,
                                    gateway=c.gateway, method="card")
        self._emit(received, "event", self._event("payment.received", cid, received, c.gateway, "payment_to_posting",
                                                  paid, currency=currency, **base))
        slow = self._fault("gateway_latency", received)
        call = self._lognormal(6.0, 0.3) if slow else self._lognormal(0.4, 0.4)
        if slow:
            self._mark(slow, cid, received, "gateway API call slow", seconds=round(call.total_seconds(), 1))
        self._emit(received, "span", SpanSpec(c.gateway, "POST /v1/charges", received, received + call,
                                              {"correlation.id": cid, "payment_ref": base["payment_ref"],
                                               "http.response.status_code": 200}, kind="server"))
        settled = received + call + self._lognormal(90, 0.8)
        settle_id = self._id("evt")
        settled_ev = self._event("payment.settled", cid, settled, c.gateway, "payment_to_posting", paid,
                                 event_id=settle_id, currency=currency, fee=money(fee), **base)
        self._emit(settled, "event", settled_ev)
        dup = self._fault("duplicate_webhook", settled)
        if dup:
            self._emit(settled + dt.timedelta(seconds=30), "event", dict(settled_ev))     # same event id
            self._mark(dup, cid, settled, "settlement webhook delivered twice", event_id=settle_id)
        lost = self._fault("webhook_loss", settled)
        hook_end = settled + self._lognormal(0.2, 0.3)
        self._emit(settled, "span", SpanSpec("billing-webhooks", "POST /odoo/webhooks/payment", settled, hook_end,
                                             {"correlation.id": cid, "webhook.event": "payment.settled"},
                                             error="connection reset by peer" if lost else None, kind="producer"))
        if lost:
            self._mark(lost, cid, settled, "settlement webhook lost: never posted in Odoo")
            self.payments[-1]["failed"] = None          # never reaches reconciliation
            return
        posted = settled + self._lognormal(120, 0.55)   # healthy: ~1 in 10,000 over 15 min
        delay = self._fault("posting_delay", posted)
        if delay:
            posted += dt.timedelta(minutes=self.rng.uniform(30, 120))
            self._mark(delay, cid, posted, "posting in Odoo delayed by the posting backlog")
        self._emit(posted, "event", self._event("payment.posted", cid, posted, "odoo", "payment_to_posting", paid,
                                                currency=currency, **base))
        self._emit(posted, "span", SpanSpec("odoo", "account.payment action_post", posted,
                                            posted + self._lognormal(0.3, 0.3),
                                            {"correlation.id": cid, "odoo.model": "account.payment"}))
        recon_at = posted + self._lognormal(300, 0.7)
        self.payments[-1]["decided_at"] = iso(recon_at)
        if failed:
            self._emit(recon_at, "event", self._event("payment.reconciliation_failed", cid, recon_at, "odoo",
                                                      amount=paid, currency=currency, reason=reason or "no_match",
                                                      **base))
        else:
            self._emit(recon_at, "event", self._event("payment.reconciled", cid, recon_at, "odoo", amount=paid,
                                                      currency=currency, **base))
        dup_pay = None if duplicate_of else self._fault("recon_duplicate", received)
        if dup_pay:
            self._mark(dup_pay, cid, received, "invoice paid twice", invoice_ref=inv)
            self._payment(c, inv, amount, received + self._lognormal(1800, 0.5), duplicate_of=cid, currency=currency)
