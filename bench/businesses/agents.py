"""A metered B2B SaaS simulated as agents: every account lives day by day and decides for itself.

Each account has seats at a per-seat price, a contract discount, usage that accrues daily, an anniversary day on
which it renews, seat changes mid-cycle (prorated amendments), and paying habits of its own: a channel (card,
SEPA, wire), a house bank, a payer type and how it writes the payment memo. The renewal *states* the total it
expects — seats, discount, metered usage and tax — but itemises usage only for some accounts, so a unit-price
formula alone cannot reproduce it.

Reconciliation fails for reasons carried only in attributes no detector names: a collective-payment token
inside the memo, an interaction of wire transfers with one house bank, reseller payers, and short payments.
Outcomes arrive with the bank statement, one to six days after settlement.
"""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal

from bench.businesses.common import Generated, cents, event, outcome

PRICES = (Decimal("12.00"), Decimal("30.00"), Decimal("75.00"))
BANKS = ("HANSA", "ALPEN", "NORD", "KLB")
CAUSES = ("discount_dropped", "usage_twice", "seats_stale", "tax_missing", "duplicate_invoice")


@dataclass
class Account:
    id: str
    seats: int
    price: Decimal
    discount: Decimal
    tax: Decimal
    currency: str
    anniversary: int
    itemises_usage: bool
    channel: str
    bank: str
    payer: str
    memo_habit: str
    usage_per_day: float
    usage: Decimal = Decimal(0)


class MeteredSaaS:
    def __init__(self, seed: int, start: dt.datetime, days: int, accounts: int = 3000, error_rate: float = 0.03):
        self.rng = random.Random(seed)
        self.start, self.days, self.error_rate = start, days, error_rate
        self.out = Generated()
        self.n = 0
        self.accounts = [self._account(i) for i in range(accounts)]

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n:07d}"

    def _account(self, i: int) -> Account:
        r = self.rng
        channel = r.choices(("card", "sepa", "wire"), (5, 3, 2))[0]
        a = Account(f"ACC{i:05d}", r.choice((1, 1, 2, 3, 5, 8, 20)), r.choice(PRICES),
                    r.choice((Decimal(0), Decimal(0), Decimal("0.05"), Decimal("0.15"))),
                    r.choice((Decimal("0.19"), Decimal("0.20"), Decimal("0.077"), Decimal(0))),
                    r.choice(("EUR", "EUR", "CHF")), r.randint(1, 28), r.random() < 0.5, channel,
                    r.choice(BANKS), r.choices(("direct", "reseller", "agency"), (8, 1, 1))[0],
                    r.choices(("ref", "ref+name", "collective"), (6, 3, 1))[0], r.uniform(0, 4))
        event(self.out, self._id("ev"), "customer.created", self._id("cus"), self.start - dt.timedelta(days=40),
              "crm", customer_id=a.id)
        return a

    def run(self) -> Generated:
        for d in range(self.days):
            day = self.start + dt.timedelta(days=d)
            for a in self.accounts:
                a.usage += Decimal(str(round(self.rng.expovariate(1 / a.usage_per_day) if a.usage_per_day else 0, 1))) \
                    * Decimal("0.40")
                if self.rng.random() < 0.004:
                    self._change_seats(a, day)
                if day.day == a.anniversary:
                    self._renew(a, day)
        return self.out

    def _at(self, day: dt.datetime) -> dt.datetime:
        return day + dt.timedelta(hours=self.rng.uniform(6, 20))

    def _change_seats(self, a: Account, day: dt.datetime) -> None:
        added = self.rng.choice((1, 1, 2, 5))
        a.seats += added
        left = Decimal((a.anniversary - day.day) % 30 or 30) / Decimal(30)
        stated = cents(a.price * added * left * (1 - a.discount) * (1 + a.tax))
        cid, at = self._id("chg"), self._at(day)
        event(self.out, self._id("ev"), "subscription.amended", cid, at, "billing", stated, a.currency,
              subscription_id=f"S-{a.id}", customer_id=a.id, unit_price=a.price, quantity=added,
              proration=str(left.quantize(Decimal("0.0001"))), discount_rate=a.discount, tax_rate=a.tax)
        self._invoice(a, cid, at, stated, stated, None)

    def _renew(self, a: Account, day: dt.datetime) -> None:
        usage, a.usage = cents(a.usage), Decimal(0)
        recurring = a.price * a.seats * (1 - a.discount)
        stated = cents((recurring + usage) * (1 + a.tax))
        cid, at = self._id("ren"), self._at(day)
        event(self.out, self._id("ev"), "subscription.renewed", cid, at, "billing", stated, a.currency,
              subscription_id=f"S-{a.id}", customer_id=a.id, unit_price=a.price, quantity=a.seats,
              discount_rate=a.discount, tax_rate=a.tax, usage_amount=usage if a.itemises_usage else None,
              period_start=day.date().isoformat(), period_end=(day + dt.timedelta(days=30)).date().isoformat())
        billed, cause = stated, None
        if self.rng.random() < self.error_rate:
            possible = [c for c in CAUSES if not (c == "discount_dropped" and not a.discount
                                                  or c == "usage_twice" and usage < 5
                                                  or c == "seats_stale" and a.seats < 2
                                                  or c == "tax_missing" and not a.tax)]
            cause = self.rng.choice(possible)
            billed = {"discount_dropped": cents((a.price * a.seats + usage) * (1 + a.tax)),
                      "usage_twice": cents((recurring + 2 * usage) * (1 + a.tax)),
                      "seats_stale": cents((a.price * (a.seats - 1) * (1 - a.discount) + usage) * (1 + a.tax)),
                      "tax_missing": cents(recurring + usage), "duplicate_invoice": stated}[cause]
            self.out.billing_errors[cid] = cause
        self._invoice(a, cid, at, stated, billed, cause)

    def _invoice(self, a: Account, cid: str, at: dt.datetime, stated: Decimal, billed: Decimal,
                 cause: str | None) -> None:
        self.out.transactions.add(cid)
        copies = 2 if cause == "duplicate_invoice" else 1
        for k in range(copies):
            ref = f"{at.year}-INV-{self._id('i')[2:]}"
            created = at + dt.timedelta(minutes=self.rng.uniform(2, 40) + 90 * k)
            event(self.out, self._id("ev"), "invoice.created", cid, created, "billing", billed, a.currency,
                  invoice_ref=ref, subscription_id=f"S-{a.id}", customer_id=a.id)
            if k == 0:
                self._pay(a, ref, billed, created)

    def _pay(self, a: Account, ref: str, billed: Decimal, invoiced: dt.datetime) -> None:
        r = self.rng
        delay = {"card": r.uniform(0.01, 0.2), "sepa": r.uniform(2, 5), "wire": r.uniform(3, 10)}[a.channel]
        settled = invoiced + dt.timedelta(days=delay)
        short = a.payer == "agency" and r.random() < 0.15
        paid = cents(billed * Decimal("0.9")) if short else billed
        memo = {"ref": ref, "ref+name": f"{ref} {a.id} GmbH",
                "collective": f"SAMMELZAHLUNG {r.randint(2, 9)} RE {ref}"}[a.memo_habit]
        prob = 0.02
        if a.memo_habit == "collective":
            prob = 0.85
        elif a.channel == "wire" and a.bank == "KLB":
            prob = 0.7
        elif a.payer == "reseller":
            prob = 0.45
        if short:
            prob = max(prob, 0.8)
        failed = r.random() < prob
        cid = self._id("pay")
        gateway = "stripe" if a.channel == "card" else "bank"
        attrs = dict(payment_ref=cid, invoice_ref=ref, customer_id=a.id, gateway=gateway, channel=a.channel,
                     bank=a.bank, payer_type=a.payer, memo=memo)
        event(self.out, self._id("ev"), "payment.settled", cid, settled, gateway, paid, a.currency, **attrs)
        posted = settled + dt.timedelta(minutes=r.uniform(5, 60))
        event(self.out, self._id("ev"), "payment.posted", cid, posted, "odoo", paid, a.currency, **attrs)
        decided = settled + dt.timedelta(days=r.uniform(1, 6))
        outcome(self.out, cid, prob, failed, settled, decided, "odoo", paid, a.currency, self._id("ev"),
                payment_ref=cid, invoice_ref=ref, customer_id=a.id)


def generate(seed: int, start: dt.datetime, days: int = 60) -> Generated:
    return MeteredSaaS(seed, start, days).run()
