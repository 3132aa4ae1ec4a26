"""Injectable faults of the simulator and their schedule: `NAME@dayD+OFFSET[/DURATION][:KEY=VALUE,…]`.

`posting_delay@day3+6h/2h` = an Odoo posting backlog from 06:00 on the third simulated day, for two hours.
`@-45m/45m` schedules relative to the end of the backfill (the last 45 minutes). A YAML scenario is a list of
`{fault: NAME, at: "day2+10h", duration: "1h", rate: 0.5}` items.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from revwatch.units import parse_duration

FAULTS = {
    "webhook_loss": "payment.settled webhooks never reach Odoo: no payment.posted",
    "duplicate_webhook": "webhooks delivered twice (same event ids)",
    "posting_delay": "Odoo posting outage/backlog: payments posted 30-120 min late",
    "gateway_latency": "payment gateway API calls take 3-9 s",
    "crm_sync_errors": "CRM → Odoo customer sync calls fail",
    "price_misconfig": "price table misconfigured: invoices billed at the wrong unit price",
    "recon_missing_ref": "payments arrive without an invoice reference: reconciliation fails",
    "recon_partial": "partial payments: amount below the invoice total",
    "recon_fx_fee": "FX/fee difference between payment and invoice",
    "recon_duplicate": "the same invoice is paid twice",
    "queue_backlog": "Odoo job queue backlog: invoices posted 1-3 h late",
    "tax_missing": "invoices billed without the customer's tax",
    "tax_double": "tax applied twice on invoices",
    "proration_missing": "plan changes billed for the full period instead of the prorated share",
    "quantity_mismatch": "invoices billed for another seat count than the subscription's",
    "currency_mismatch": "invoices billed with the right number in another currency",
    "double_charge": "a second invoice for the same renewal or order",
    "recon_malformed_ref": "payments carry a garbled invoice reference: reconciliation fails",
    "recon_fee_netting": "the gateway nets its fee out of the payout: paid = invoice - fee",
    "recon_unknown_partner": "payments from a partner Odoo does not know",
}
# Billing-variance faults and the cause a detector should name for each (ground truth `cause`).
VARIANCE_CAUSES = {"price_misconfig": "wrong_price", "tax_missing": "tax_missing", "tax_double": "tax_double",
                   "proration_missing": "proration_missing", "quantity_mismatch": "quantity_mismatch",
                   "currency_mismatch": "currency_mismatch", "double_charge": "double_charge"}
_SPEC = re.compile(r"^(?P<name>[a-z_]+)@(?:day(?P<day>\d+)(?P<off>[+-][0-9hmsd.]+)?|(?P<rel>-[0-9hmsd.]+))"
                   r"(?:/(?P<dur>[0-9hmsd.]+))?(?::(?P<opts>.*))?$")


class FaultError(ValueError):
    """A fault spec that cannot be understood."""


@dataclass(frozen=True)
class Fault:
    name: str
    start: dt.datetime
    end: dt.datetime
    rate: float = 1.0          # share of affected transactions while active

    def active(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


def parse_fault(spec: str, sim_start: dt.datetime, sim_end: dt.datetime) -> Fault:
    """Parse one `--fault` value against the simulated period [sim_start, sim_end)."""
    m = _SPEC.match(spec.strip())
    if not m or m.group("name") not in FAULTS:
        names = ", ".join(sorted(FAULTS))
        raise FaultError(f"invalid fault {spec!r}: use NAME@dayN+OFFSET[/DURATION] with NAME one of {names}")
    try:
        if m.group("rel"):
            start = sim_end - parse_duration(m.group("rel")[1:])
        else:
            day = int(m.group("day"))
            if day < 1:
                raise FaultError(f"invalid fault {spec!r}: days count from day1")
            start = sim_start + dt.timedelta(days=day - 1)
            off = m.group("off")
            if off:
                d = parse_duration(off[1:])
                start = start + d if off[0] == "+" else start - d
        duration = parse_duration(m.group("dur")) if m.group("dur") else dt.timedelta(hours=1)
    except ValueError as e:
        raise FaultError(f"invalid fault {spec!r}: {e}") from None
    rate = 1.0
    for opt in filter(None, (m.group("opts") or "").split(",")):
        k, _, v = opt.partition("=")
        if k != "rate":
            raise FaultError(f"invalid fault {spec!r}: unknown option {k!r} (only rate=0..1)")
        try:
            rate = float(v)
        except ValueError:
            raise FaultError(f"invalid fault {spec!r}: rate must be a number") from None
        if not 0 < rate <= 1:
            raise FaultError(f"invalid fault {spec!r}: rate must be in (0, 1]")
    return Fault(m.group("name"), start, start + duration, rate)


def load_scenario(path: str | Path, sim_start: dt.datetime, sim_end: dt.datetime) -> list[Fault]:
    """A YAML list of faults: [{fault, at, duration, rate}]."""
    try:
        items = yaml.safe_load(Path(path).read_text()) or []
    except (OSError, yaml.YAMLError) as e:
        raise FaultError(f"{path}: cannot read scenario ({e})") from None
    if not isinstance(items, list):
        raise FaultError(f"{path}: a scenario is a YAML list of faults")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or "fault" not in it or "at" not in it:
            raise FaultError(f"{path}: item {i}: needs 'fault' and 'at'")
        spec = f"{it['fault']}@{it['at']}" + (f"/{it['duration']}" if it.get("duration") else "") + \
            (f":rate={it['rate']}" if it.get("rate") is not None else "")
        out.append(parse_fault(spec, sim_start, sim_end))
    return out
