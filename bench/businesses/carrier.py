"""A B2B IoT-connectivity carrier run as a discrete-event simulation: one clock, one queue of scheduled actions.

Unlike `agents` (every account stepped day by day) and `tables` (volumes drawn from rate tables), nothing here is
looped over days: each action — a bill run on an account's cycle day, a SIM-count change, a payment, a bank
statement line — schedules the next ones on a heap, and the clock jumps from one to the next. Enterprises
own several service accounts (one subscription each: SIMs × a plan rate, a data-pool overage, a fixed bundle
discount, SLA credits from earlier outages, country tax) and pay them in any of three currencies, whatever
their country. A quarter of the accounts state no total on their bill run, only the formula's attributes
(docs/events.md); the others state it, sometimes with a roaming charge no documented attribute names. Correct
but awkward billing: invoices created, posted and sent (three events per reference), some re-issued corrected
under the same reference, SLA credits given as a credit note against the invoice, downgrades credited.

Reconciliation fails by a smooth logistic law (not a rule table) whose drivers are carried in ways the other
two do not use: a count (`remit_lines`, invoices covered by one remittance, with a threshold at 12), a token
inside free-text remittance info (`NETTING`), an interaction of two categoricals (`rail` swift × `remitter_country`
IN), the payment's currency (GBP), the invoice's `segment`, and the enterprise itself (some AP departments are
simply messy: only their history shows it); plus attributes that carry nothing (AP system, a bank transaction id,
a PO number). Outcomes arrive one to ten days after settlement, failures later than matches.

The enterprise effect is the hard part by design: it is learnable only from the customer's own earlier outcomes,
and in 60 days with outcomes up to ten days late, a model knowing every other effect exactly and weighing each
earlier outcome by its exact likelihood still reaches only 0.94–1.00 of the AUC of the true probabilities per seed
(0.977 on average over seeds 201–206). No scorer can know the effect, so the Bayes-optimal reference the bench
measures against is `observable_bayes`: the effect integrated over its posterior given what the enterprise's
payments showed by the scoring moment, and each payment's own wait (failures are reported later than matches) —
the best ranking anything observing these events can make. The true probabilities' AUC is printed beside it.
"""
from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from bench.businesses.common import Generated, cents, event, outcome

PLANS = {"iot-lite": Decimal("1.80"), "iot-pro": Decimal("4.50"), "fleet": Decimal("11.00")}
COUNTRIES = {"DE": Decimal("0.19"), "FR": Decimal("0.20"), "NL": Decimal("0.21"), "US": Decimal(0),
             "IN": Decimal("0.18"), "BR": Decimal("0.12"), "GB": Decimal("0.20")}
RAILS = ("sepa_ct", "ach", "swift", "card", "direct_debit")
WORDS = ("Nordwind", "Kestrel", "Atlas", "Borealis", "Quantum", "Harbor", "Vertex", "Sable", "Orion", "Tundra",
         "Cobalt", "Meridian", "Lumen", "Granite", "Pioneer")
SUFFIX = ("Logistics", "Metering", "Fleet Ltd", "Energy AG", "Mobility", "Pvt Ltd", "SA", "Inc")
MESSY_SHARE, MESSY_LOGIT = 0.12, 2.0        # share of enterprises with a messy AP department, its log-odds
OUTCOME_DAYS = {True: (3.0, 8.0), False: (1.0, 4.0)}    # settled → outcome, uniform, by swift or not
FAILURE_EXTRA_DAYS = (1.0, 3.0)                        # a failure is reported this much later, uniform
CAUSES = ("overage_rerated", "sla_credit_skipped", "bundle_discount_lost", "billing_run_twice",
          "proration_ignored", "downgrade_credit_short", "billed_in_usd", "tax_table_stale")


@dataclass
class Enterprise:
    id: str
    name: str
    country: str
    currency: str
    segment: str
    ap_system: str
    messy: bool                    # the AP department's own habit: seen only in its history
    netting: float                 # how often it nets intercompany balances in the remittance text
    accounts: list[Account] = field(default_factory=list)


@dataclass
class Account:
    sub: str
    ent: Enterprise
    plan: str
    sims: int
    cycle_day: int
    discount_amount: Decimal
    states_total: bool
    usage_per_sim: float
    credit: Decimal = Decimal(0)


class Carrier:
    def __init__(self, seed: int, start: dt.datetime, days: int, enterprises: int = 700,
                 error_rate: float = 0.03):
        self.rng = random.Random(seed)
        self.start, self.end, self.error_rate = start, start + dt.timedelta(days=days), error_rate
        self.out = Generated()
        self.laws: list[_PaymentLaw] = []
        self.out.observable_bayes = self.observable_bayes
        self.queue: list[tuple[dt.datetime, int, Callable[..., None], tuple]] = []
        self.seq = itertools.count()
        self.n = 0
        for i in range(enterprises):
            self._enterprise(i)

    # -- the engine -------------------------------------------------------------------------------------------
    def at(self, when: dt.datetime, action: Callable[..., None], *args) -> None:
        heapq.heappush(self.queue, (when, next(self.seq), action, args))

    def run(self) -> Generated:
        while self.queue:
            when, _, action, args = heapq.heappop(self.queue)
            action(when, *args)
        return self.out

    def observable_bayes(self, now: dt.datetime) -> dict[str, float]:
        """P(failure | everything a scorer can observe at `now`) of each payment received and still open then:
        the Bayes-optimal ranking the risk model is measured against.

        The enterprise's messy habit is hidden: no scorer can know it, only infer it. So it is integrated out —
        its prior share updated by the likelihood of what the enterprise's payments showed by `now` (a decided
        outcome; an open payment's wait so far, failures being reported later) — and the payment's own wait
        enters too. Every other effect is taken as known exactly (this is a ceiling, not a model)."""
        seen = [w for w in self.laws if w.received < now]
        log_odds: dict[str, float] = defaultdict(lambda: math.log(MESSY_SHARE / (1 - MESSY_SHARE)))
        open_: list[tuple[_PaymentLaw, tuple[float, float], tuple[float, float]]] = []
        for w in seen:
            probs = (_logistic(w.logit), _logistic(w.logit + MESSY_LOGIT))        # not messy, messy
            if w.decided < now:
                like = tuple(q if w.failed else 1 - q for q in probs)
            else:
                days = max(0.0, (now - w.settled).total_seconds() / 86400)
                wait = (_waiting(days, w.swift, False), _waiting(days, w.swift, True))   # (reconciles, fails)
                like = tuple(q * wait[1] + (1 - q) * wait[0] for q in probs)
                open_.append((w, probs, wait))
            log_odds[w.enterprise] += math.log(max(like[1], 1e-300)) - math.log(max(like[0], 1e-300))
        out = {}
        for w, probs, (ok, fail) in open_:
            messy = _logistic(log_odds[w.enterprise])
            out[w.cid] = sum(share * q * fail / (q * fail + (1 - q) * ok)
                             for share, q in ((1 - messy, probs[0]), (messy, probs[1])))
        return out

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:07d}"

    # -- the book of customers --------------------------------------------------------------------------------
    def _enterprise(self, i: int) -> None:
        r = self.rng
        country = r.choices(tuple(COUNTRIES), (5, 3, 2, 5, 3, 2, 3))[0]
        e = Enterprise(f"ENT-{i:04d}", f"{r.choice(WORDS)} {r.choice(SUFFIX)}", country,
                       r.choices(("EUR", "USD", "GBP"), (5, 3.5, 1.5))[0],
                       r.choices(("enterprise", "smb", "public"), (5, 3, 2))[0],
                       r.choice(("SAP", "Oracle", "NetSuite", "Xero", "Coupa")), r.random() < MESSY_SHARE,
                       r.choice((0.0, 0.0, 0.0, 0.05, 0.3)))
        event(self.out, self._id("e"), "customer.created", self._id("cus"), self.start - dt.timedelta(days=90),
              "crm", customer_id=e.id, country=country, segment=e.segment)
        for _ in range(r.choice((1, 1, 2, 3, 4, 6))):
            a = Account(f"SA-{i:04d}-{len(e.accounts)}", e, r.choice(tuple(PLANS)),
                        int(r.lognormvariate(3.5, 1.0)) + 5, r.choice((1, 8, 15, 22)),
                        r.choice((Decimal(0), Decimal(0), Decimal("25.00"), Decimal("120.00"))),
                        r.random() > 0.25, r.uniform(0, 0.6))
            e.accounts.append(a)
            first = self.start.replace(day=a.cycle_day) + dt.timedelta(hours=r.uniform(1, 5))
            if first < self.start:
                first = (first + dt.timedelta(days=32)).replace(day=a.cycle_day)
            self.at(first, self.bill_run, a)
            self.at(self.start + dt.timedelta(days=r.expovariate(1 / 120)), self.sim_change, a)

    # -- billing ----------------------------------------------------------------------------------------------
    def bill_run(self, now: dt.datetime, a: Account) -> None:
        if now >= self.end:
            return
        r, e = self.rng, a.ent
        nxt = (now + dt.timedelta(days=32)).replace(day=a.cycle_day)
        self.at(nxt, self.bill_run, a)
        tax = COUNTRIES[e.country]
        rate = PLANS[a.plan]
        usage = cents(Decimal(str(round(a.sims * r.expovariate(1 / a.usage_per_sim) if a.usage_per_sim else 0, 2)))
                      * Decimal("2.50"))
        credit, a.credit = a.credit, Decimal(0)
        roaming = cents(Decimal(str(r.uniform(5, 300)))) if a.states_total and r.random() < 0.2 else Decimal(0)
        net = rate * a.sims - a.discount_amount + usage + roaming
        if net <= credit + 10:                  # a tiny account: no bundle discount, no credit this month
            a.discount_amount, credit, net = Decimal(0), Decimal(0), rate * a.sims + usage + roaming
        expected = cents(net * (1 + tax) - credit)
        cid = self._id("run")
        period_end = nxt.date().isoformat()
        event(self.out, self._id("e"), "subscription.renewed", cid, now, "bss",
              expected if a.states_total else None, e.currency, subscription_id=a.sub, customer_id=e.id,
              plan=a.plan, unit_price=rate, quantity=a.sims, tax_rate=tax, usage_amount=usage,
              discount_amount=a.discount_amount or None, credit_amount=credit or None,
              period_start=now.date().isoformat(), period_end=period_end,
              roaming_charges=roaming or None)
        if not a.states_total:
            self.out.events[-1]["currency"] = e.currency      # no amount, but the period's currency is stated
        cause = None
        if r.random() < self.error_rate:
            possible = [c for c in ("overage_rerated", "sla_credit_skipped", "bundle_discount_lost",
                                    "billing_run_twice", "billed_in_usd", "tax_table_stale")
                        if not (c == "overage_rerated" and usage < 20 or c == "sla_credit_skipped" and not credit
                                or c == "bundle_discount_lost" and not a.discount_amount
                                or c == "billed_in_usd" and e.currency == "USD" or c == "tax_table_stale" and not tax)]
            cause = r.choice(possible)
        billed, currency = expected, e.currency
        credit_note = credit and r.random() < 0.35       # the SLA credit as a credit note against the invoice
        if credit_note:
            billed = cents(net * (1 + tax))
        if cause == "overage_rerated":
            billed += cents(usage * Decimal("0.5") * (1 + tax))
        elif cause == "sla_credit_skipped":
            billed, credit_note = cents(net * (1 + tax)), False
        elif cause == "bundle_discount_lost":
            billed += cents(a.discount_amount * (1 + tax))
        elif cause == "billed_in_usd":
            currency = "USD"
        elif cause == "tax_table_stale":
            billed = cents(net * (1 + tax + Decimal("0.03")) - (0 if credit_note else credit))
        if cause:
            self.out.billing_errors[cid] = cause
        self.out.transactions.add(cid)
        at = now + dt.timedelta(minutes=r.uniform(10, 240))
        ref = self._invoice(at, cid, a, billed, currency, payable=billed - credit if credit_note else billed)
        if credit_note:
            event(self.out, self._id("e"), "credit_note.issued", cid, at + dt.timedelta(hours=r.uniform(1, 30)),
                  "erp", credit, currency, invoice_ref=ref, subscription_id=a.sub, customer_id=e.id,
                  memo=f"SLA credit outage {r.randint(100, 999)}")
        if cause == "billing_run_twice":
            self._invoice(at + dt.timedelta(days=r.uniform(1, 3)), cid, a, billed, currency, pay=False)
        if r.random() < 0.12:                          # an outage this month: a credit on the next bill
            a.credit = cents(Decimal(str(r.uniform(5, 80))))

    def sim_change(self, now: dt.datetime, a: Account) -> None:
        if now >= self.end:
            return
        r, e = self.rng, a.ent
        self.at(now + dt.timedelta(days=r.expovariate(1 / 120)), self.sim_change, a)
        change = r.choice((5, 10, 25, 50, -5, -10)) if a.sims > 15 else r.choice((5, 10, 25))
        left = Decimal((a.cycle_day - now.day) % 30 or 30) / Decimal(30)
        left = left.quantize(Decimal("0.0001"))
        tax = COUNTRIES[e.country]
        rate = PLANS[a.plan]
        a.sims += change
        stated = cents(rate * change * left * (1 + tax))
        cid = self._id("chg")
        event(self.out, self._id("e"), "subscription.amended", cid, now, "bss", stated, e.currency,
              subscription_id=a.sub, customer_id=e.id, plan=a.plan, unit_price=rate, quantity=change,
              proration=left, tax_rate=tax)
        self.out.transactions.add(cid)
        cause = None
        if r.random() < self.error_rate:
            cause = "proration_ignored" if change > 0 else "downgrade_credit_short"
            if cause == "proration_ignored" and left == 1:
                cause = None
        if cause:
            self.out.billing_errors[cid] = cause
        at = now + dt.timedelta(minutes=r.uniform(5, 90))
        if change > 0:
            billed = cents(rate * change * (1 + tax)) if cause else stated
            self._invoice(at, cid, a, billed, e.currency)
        else:
            credit = -stated / 2 if cause else -stated
            event(self.out, self._id("e"), "credit_note.issued", cid, at, "erp", cents(credit), e.currency,
                  subscription_id=a.sub, customer_id=e.id)

    def _invoice(self, at: dt.datetime, cid: str, a: Account, billed: Decimal, currency: str,
                 pay: bool = True, payable: Decimal | None = None) -> str:
        r, e = self.rng, a.ent
        ref = f"IN{at:%y%m}/{self._id('')}"
        attrs = dict(invoice_ref=ref, subscription_id=a.sub, customer_id=e.id, plan=a.plan, segment=e.segment,
                     billing_country=e.country, po_number=f"PO-{r.randint(10000, 99999)}" if e.segment != "smb"
                     else None)
        if r.random() < 0.03:                         # issued wrong, corrected under the same reference
            event(self.out, self._id("e"), "invoice.created", cid, at, "erp", billed + r.choice((10, -7, 100)),
                  currency, **attrs)
            at += dt.timedelta(minutes=r.uniform(20, 300))
        event(self.out, self._id("e"), "invoice.created", cid, at, "erp", billed, currency, **attrs)
        event(self.out, self._id("e"), "invoice.posted", cid, at + dt.timedelta(minutes=r.uniform(1, 20)), "erp",
              billed, currency, **attrs)
        sent = at + dt.timedelta(hours=r.uniform(1, 12))
        event(self.out, self._id("e"), "invoice.sent", cid, sent, "erp", None, currency, invoice_ref=ref,
              customer_id=e.id)
        payable = billed if payable is None else payable
        if pay and payable > 0:
            self.at(sent + dt.timedelta(days=r.uniform(2, 25)), self.pay, a, ref, payable, currency)
        return ref

    # -- collection -------------------------------------------------------------------------------------------
    def pay(self, now: dt.datetime, a: Account, ref: str, amount: Decimal, currency: str) -> None:
        r, e = self.rng, a.ent
        rail = "swift" if r.random() < 0.3 else r.choice(
            {"DE": ("sepa_ct", "direct_debit", "card"), "FR": ("sepa_ct", "direct_debit"), "NL": ("sepa_ct", "card"),
             "US": ("ach", "card"), "IN": ("card", "ach"), "BR": ("card", "ach"), "GB": ("ach", "card")}[e.country])
        lines = 1 if r.random() < 0.55 else min(40, int(r.expovariate(1 / 7)) + 2)
        netting = r.random() < e.netting
        day = now.date().isoformat()
        memo = r.choice((f"{ref}", f"INV {ref} {e.name}", f"{e.name} AP RUN {day} REF {ref}",
                         f"Payment {e.id} invoices {ref} +{lines - 1}"))
        if netting:
            memo = r.choice((f"{e.name} NETTING {day[:7]} / {ref}", f"intercompany NETTING adj {ref} {e.name}",
                             f"REF {ref} NETTING"))
        logit = -3.4
        logit += 3.0 if netting else 0.0
        logit += 2.4 if lines > 12 else 0.0
        logit += 2.8 if rail == "swift" and e.country == "IN" else 0.0
        logit += 1.6 if currency == "GBP" else 0.0
        logit += 1.0 if e.segment == "public" else 0.0
        prob = _logistic(logit + (MESSY_LOGIT if e.messy else 0.0))
        failed = r.random() < prob
        cid = self._id("pmt")
        attrs = dict(payment_ref=cid, invoice_ref=ref, customer_id=e.id, gateway="adyen" if rail == "card" else "bank",
                     method=rail, remitter_country=e.country, remittance_info=memo, remit_lines=lines,
                     ap_system=e.ap_system, bank_txn_id=f"{r.getrandbits(40):010x}")
        received = now
        event(self.out, self._id("e"), "payment.received", cid, received, attrs["gateway"], amount, currency, **attrs)
        settled = received + dt.timedelta(hours=r.uniform(0.1, 2) if rail == "card" else r.uniform(4, 60))
        event(self.out, self._id("e"), "payment.settled", cid, settled, attrs["gateway"], amount, currency, **attrs)
        event(self.out, self._id("e"), "payment.posted", cid, settled + dt.timedelta(minutes=r.uniform(3, 90)),
              "erp", amount, currency, payment_ref=cid, invoice_ref=ref, customer_id=e.id)
        days = r.uniform(*OUTCOME_DAYS[rail == "swift"]) + (r.uniform(*FAILURE_EXTRA_DAYS) if failed else 0)
        self.laws.append(_PaymentLaw(cid, e.id, logit, rail == "swift", received, settled, failed,
                                     settled + dt.timedelta(days=days)))
        outcome(self.out, cid, prob, failed, settled, settled + dt.timedelta(days=days), "erp", amount, currency,
                self._id("e"), payment_ref=cid, invoice_ref=ref, customer_id=e.id,
                reason="no matching open item" if failed else None)


@dataclass
class _PaymentLaw:
    """What decided one payment's outcome, kept for the observable Bayes reference."""
    cid: str
    enterprise: str
    logit: float                 # every effect but the enterprise's hidden one
    swift: bool
    received: dt.datetime
    settled: dt.datetime
    failed: bool
    decided: dt.datetime


def _logistic(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def _waiting(days: float, swift: bool, failed: bool, steps: int = 200) -> float:
    """P(no outcome yet `days` after settlement | swift, how it ends): the uniform delay's survival, and for a
    failure its sum with the uniform extra delay (midpoint rule over the extra)."""
    lo, hi = OUTCOME_DAYS[swift]
    if not failed:
        return min(1.0, max(0.0, (hi - days) / (hi - lo)))
    a, b = FAILURE_EXTRA_DAYS
    extras = (a + (b - a) * (k + 0.5) / steps for k in range(steps))
    return sum(min(1.0, max(0.0, (hi - days + x) / (hi - lo))) for x in extras) / steps


def generate(seed: int, start: dt.datetime, days: int = 60) -> Generated:
    return Carrier(seed, start, days).run()
