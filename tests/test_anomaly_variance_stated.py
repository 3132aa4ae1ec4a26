"""Billing variance trusts the amount the business states: usage add-ons, discounts and credits in the stated
amount are never flagged; the unit-price formula is the fallback (with the documented add-on attributes) and a
cross-check; a finding names the original invoice apart from the flagged one."""
import datetime as dt
from decimal import Decimal

from anomaly.variance import Event, detect

T0 = dt.datetime(2026, 5, 4, 8, tzinfo=dt.timezone.utc)
_n = iter(range(10**6))


def E(typ, cid, amount, minutes=0, currency="EUR", **attrs):
    return Event(f"e{next(_n)}", typ, cid, T0 + dt.timedelta(minutes=minutes),
                 None if amount is None else Decimal(amount), currency, {k: str(v) for k, v in attrs.items()})


def renewal(cid, stated, billed, **attrs):
    base = dict(subscription_id=f"SUB-{cid}", customer_id=f"C-{cid}", plan="pro", unit_price="50.00",
                quantity="4", tax_rate="0.20")
    return [E("subscription.renewed", cid, stated, **{**base, **attrs}),
            E("invoice.created", cid, billed, 1, invoice_ref=f"INV/{cid}", subscription_id=f"SUB-{cid}")]


def by_cid(events):
    found, judged = detect(events)
    return {v.correlation_id: v for v in found}, judged


def test_stated_amount_with_usage_discount_and_credit_is_the_expectation():
    # 4 seats × 50 = 200, −10 % discount = 180, + 35.50 usage = 215.50, × 1.2 = 258.60, − 20 credit = 238.60
    extras = dict(discount_rate="0.10", usage_amount="35.50", credit_amount="20.00")
    events = (renewal("ok", "238.60", "238.60", **extras)            # formula and statement agree
              + renewal("stated", "311.40", "311.40")                # usage the event does not itemise: trusted
              + renewal("short", "311.40", "240.00"))                # the stated amount is not what was billed
    found, judged = by_cid(events)
    assert set(judged) == {"ok", "stated", "short"} and set(found) == {"short"}
    v = found["short"]
    d = v.details()
    assert d["expected"] == "311.40" and d["expected_from"] == "stated" and d["formula_expected"] == "240.00"
    assert any("unit price × quantity would give 240.00" in r and "stated amount is what counts" in r
               for r in v.reasons), v.reasons


def test_formula_is_the_fallback_with_the_documented_add_on_attributes():
    extras = dict(discount_rate="0.10", usage_amount="35.50", credit_amount="20.00")
    events = renewal("f_ok", None, "238.60", **extras) + renewal("f_bad", None, "298.60", **extras)
    found, judged = by_cid(events)
    assert set(judged) == {"f_ok", "f_bad"} and set(found) == {"f_bad"}
    v = found["f_bad"]
    assert v.details()["expected"] == "238.60" and v.details()["expected_from"] == "formula"
    assert v.cause == "wrong_price", v.reasons


def test_causes_are_recognised_inside_totals_with_add_ons():
    usage = dict(usage_amount="30.00")            # (4 × 50 + 30) × 1.2 = 276.00; one seat is 60.00 with tax
    events = (renewal("qty", "276.00", "336.00", **usage)
              + renewal("tax", "276.00", "230.00", **usage)
              + renewal("pro", "156.00", "276.00", proration="0.5", **usage))   # (100 + 30) × 1.2 = 156.00
    found, _ = by_cid(events)
    assert found["qty"].cause == "quantity_mismatch" and "quantity 5 instead of 4" in found["qty"].reasons[1]
    assert found["tax"].cause == "tax_missing"
    assert found["pro"].cause == "proration_missing", found["pro"].reasons


def test_double_charge_names_the_original_invoice_in_its_own_field():
    events = renewal("dbl", "240.00", "240.00") + [
        E("invoice.created", "dbl", "240.00", 30, invoice_ref="INV/dbl-2", subscription_id="SUB-dbl")]
    found, _ = by_cid(events)
    d = found["dbl"].details()
    assert d["cause"] == "double_charge" and d["invoice_ref"] == "INV/dbl-2" and d["original_invoice_ref"] == "INV/dbl"
    single, _ = by_cid(renewal("one", "240.00", "250.00"))
    assert single["one"].details()["original_invoice_ref"] == ""       # only one invoice: nothing else to name


def test_a_downgrade_is_judged_on_its_credit_note():
    # docs/events.md: a downgrade states a negative amount and expects a credit_note.issued (no invoice at all)
    def downgrade(cid, credited):
        return [E("subscription.amended", cid, "-36.00", subscription_id=f"SUB-{cid}", customer_id=f"C-{cid}",
                  unit_price="-12.00", quantity="5", proration="0.5", tax_rate="0.20"),
                E("credit_note.issued", cid, credited, 30, subscription_id=f"SUB-{cid}", customer_id=f"C-{cid}")]
    found, judged = by_cid(downgrade("down_ok", "36.00") + downgrade("down_short", "18.00"))
    assert set(judged) == {"down_ok", "down_short"} and set(found) == {"down_short"}
    d = found["down_short"].details()
    assert d["expected"] == "-36.00" and d["billed"] == "-18.00", d


def test_a_charge_waiting_for_its_invoice_is_not_judged_on_a_credit_note_alone():
    # a renewal expects a charge: a credit note under the same correlation ID before the invoice (a refund of an
    # earlier period) leaves it pending — judged on its credit alone it would read "billed -20.00, expected 240.00"
    events = [E("subscription.renewed", "early_credit", "240.00", subscription_id="SUB-x", customer_id="C-x"),
              E("credit_note.issued", "early_credit", "20.00", 5, invoice_ref="INV/old", customer_id="C-x")]
    found, judged = by_cid(events)
    assert found == {} and "early_credit" not in judged
    # once the invoice arrives the transaction is judged on its net: 260 − 20 = 240, as stated
    found, judged = by_cid(events + [E("invoice.created", "early_credit", "260.00", 9, invoice_ref="INV/x",
                                       subscription_id="SUB-x")])
    assert found == {} and "early_credit" in judged
