"""A subscription-box marketplace drawn from tables: daily volumes per segment and weekday, a product table, a
coupon table, a VAT table per country, and a Markov chain over the collection states of each invoice.

Nothing here is an agent with memory: each day, each segment books a Poisson number of orders at its weekday
rate; each order samples a product row, add-ons and a coupon; each invoice then walks the collection chain
(paid → or reminded → reminded again → a collection agency, with chargebacks re-presented on the way), and the
state it ends in decides how the payment looks. Orders *state* their total (product + add-ons − coupon, plus VAT)
but name the coupon only as a code, so no formula can rebuild it.

Reconciliation fails for reasons carried in attributes no detector names: one acquirer, a `/R` token inside
re-presented references, Klarna payments from Austria (an interaction of two categories), and the dunning level
(a number). Outcomes take the method's own time: a day for cards, up to eight for Klarna.
"""
from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal

from bench.businesses.common import Generated, cents, event, outcome

SEGMENTS = {"consumer": (40, 38, 36, 37, 45, 70, 62), "gift": (6, 5, 5, 6, 9, 14, 12),
            "office": (14, 15, 15, 14, 12, 1, 1)}
PRODUCTS = (("box-s", Decimal("19.90")), ("box-m", Decimal("34.90")), ("box-l", Decimal("54.90")),
            ("box-xl", Decimal("89.00")))
ADDONS = (Decimal(0), Decimal(0), Decimal("4.50"), Decimal("9.90"))
COUPONS = {"": Decimal(0), "WELCOME5": Decimal("5.00"), "SPRING10": Decimal("10.00"), "FRIEND3": Decimal("3.00")}
VAT = {"DE": Decimal("0.19"), "AT": Decimal("0.20"), "NL": Decimal("0.21"), "FR": Decimal("0.20")}
METHODS = {"card": 1.0, "paypal": 1.0, "klarna": 5.5, "sepa": 3.5}       # days until the outcome is known
# collection chain: state → [(next state, probability)]; terminal states say how the money arrives
CHAIN = {"invoiced": [("paid", 0.86), ("reminded", 0.10), ("chargeback", 0.04)],
         "reminded": [("paid", 0.7), ("reminded2", 0.3)],
         "reminded2": [("paid", 0.5), ("agency", 0.5)],
         "chargeback": [("represented", 1.0)]}
CAUSES = ("coupon_ignored", "addon_missing", "wrong_vat", "wrong_currency", "full_swap_billed")


class BoxMarketplace:
    def __init__(self, seed: int, start: dt.datetime, days: int, error_rate: float = 0.03):
        self.rng = random.Random(seed)
        self.start, self.days, self.error_rate = start, days, error_rate
        self.out = Generated()
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:07d}"

    def _poisson(self, lam: float) -> int:
        k, p, limit = 0, 1.0, math.exp(-lam)
        while True:
            p *= self.rng.random()
            if p < limit:
                return k
            k += 1

    def run(self) -> Generated:
        for d in range(self.days):
            day = self.start + dt.timedelta(days=d)
            for segment, rates in SEGMENTS.items():
                for _ in range(self._poisson(rates[day.weekday()] * 2.0)):
                    self._order(segment, day + dt.timedelta(seconds=self.rng.uniform(0, 86400)))
        return self.out

    def _order(self, segment: str, at: dt.datetime) -> None:
        r = self.rng
        country = r.choices(list(VAT), (6, 2, 2, 1))[0]
        currency = "EUR"
        plan, price = r.choice(PRODUCTS)
        addon, coupon = r.choice(ADDONS), r.choices(list(COUPONS), (6, 2, 1, 1))[0]
        customer = f"K{r.randint(1, 6000):05d}"
        swap = r.random() < 0.08                                # a box swapped mid-cycle: prorated difference
        cid = self._id("o")
        vat = VAT[country]
        if swap:
            left = Decimal(r.randint(3, 27)) / Decimal(30)
            diff = Decimal("15.00")
            stated = cents(diff * left * (1 + vat))
            event(self.out, self._id("e"), "subscription.amended", cid, at, "shop", stated, currency,
                  subscription_id=f"SB{customer}", customer_id=customer, plan=plan, unit_price=diff, quantity=1,
                  proration=str(left.quantize(Decimal("0.0001"))), tax_rate=vat, segment=segment)
        else:
            stated = cents((price + addon - COUPONS[coupon]) * (1 + vat))
            event(self.out, self._id("e"), "order.booked", cid, at, "shop", stated, currency,
                  subscription_id=f"SB{customer}", customer_id=customer, plan=plan, unit_price=price, quantity=1,
                  tax_rate=vat, coupon=coupon or None, segment=segment, country=country)
        billed, cause = stated, None
        if r.random() < self.error_rate:
            possible = ["wrong_vat", "wrong_currency"] + (
                ["full_swap_billed"] if swap else ["coupon_ignored"] * bool(coupon) + ["addon_missing"] * bool(addon))
            cause = r.choice(possible)
            other_vat = next(v for c, v in VAT.items() if v != vat)
            billed = {"coupon_ignored": cents((price + addon) * (1 + vat)),
                      "addon_missing": cents((price - COUPONS[coupon]) * (1 + vat)),
                      "wrong_vat": cents(stated / (1 + vat) * (1 + other_vat)),
                      "full_swap_billed": cents(Decimal("15.00") * (1 + vat)),
                      "wrong_currency": stated}[cause]
            if cause == "wrong_currency":
                currency = "CHF"
            if cause == "wrong_currency" or abs(billed - stated) >= Decimal("0.05"):
                self.out.billing_errors[cid] = cause
            else:                        # a VAT slip worth a cent on a tiny amount is not a billing error
                billed = stated
        self.out.transactions.add(cid)
        ref = f"RE{at:%y%m}{self._id('')}"
        inv_at = at + dt.timedelta(minutes=r.uniform(1, 30))
        event(self.out, self._id("e"), "invoice.created", cid, inv_at, "erp", billed, currency, invoice_ref=ref,
              subscription_id=f"SB{customer}", customer_id=customer, plan=plan, country=country)
        self._collect(cid, ref, customer, country, billed, currency, inv_at)

    def _walk(self) -> list[str]:
        state, path = "invoiced", []
        while state in CHAIN:
            nxt, probs = zip(*CHAIN[state])
            state = self.rng.choices(nxt, probs)[0]
            path.append(state)
        return path

    def _collect(self, order: str, ref: str, customer: str, country: str, billed: Decimal, currency: str,
                 at: dt.datetime) -> None:
        r = self.rng
        path = self._walk()
        dunning = path.count("reminded") + path.count("reminded2")
        method = r.choices(list(METHODS), (5, 3, 2, 2))[0]
        acquirer = f"ACQ-{r.randint(1, 9)}"
        end = path[-1]
        reference = {"paid": ref, "agency": f"INK/{r.choice(('CREDITREFORM', 'EOS'))}/{ref}",
                     "represented": f"{ref}/R{r.randint(1, 3)}"}[end]
        settled = at + dt.timedelta(days=r.uniform(0.02, 1.5) + 7 * dunning + (5 if end == "represented" else 0))
        prob = 0.015
        if "/R" in reference:
            prob = 0.75
        elif acquirer == "ACQ-7":
            prob = 0.6
        elif country == "AT" and method == "klarna":
            prob = 0.65
        prob = min(0.95, prob + 0.2 * dunning)
        failed = r.random() < prob
        pay = self._id("p")
        attrs = dict(payment_ref=pay, invoice_ref=ref, customer_id=customer, gateway=method, acquirer=acquirer,
                     country=country, reference=reference, dunning_level=dunning)
        event(self.out, self._id("e"), "payment.settled", pay, settled, method, billed, currency, **attrs)
        posted = settled + dt.timedelta(minutes=r.uniform(1, 90))
        event(self.out, self._id("e"), "payment.posted", pay, posted, "erp", billed, currency, **attrs)
        decided = settled + dt.timedelta(days=METHODS[method] * r.uniform(0.3, 1.5))
        outcome(self.out, pay, prob, failed, settled, decided, "erp", billed, currency, self._id("e"),
                payment_ref=pay, invoice_ref=ref, customer_id=customer)


def generate(seed: int, start: dt.datetime, days: int = 60) -> Generated:
    return BoxMarketplace(seed, start, days).run()
