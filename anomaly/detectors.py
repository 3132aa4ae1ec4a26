"""One anomaly scan: every detector over the store, findings recorded with their status (anomaly.findings).

Detectors: per-invoice billing variance (anomaly.billing), reconciliation-failure risk of every open payment
(anomaly.risk) and the aggregate billing series per plan × currency × day (anomaly.aggregate). A detector that
fails is reported in the summary and the others still run: one broken detector must not hide the rest.
"""
from __future__ import annotations

import json
import logging

from anomaly import findings
from anomaly.aggregate import scan_aggregate
from anomaly.billing import scan_billing
from anomaly.findings import Finding, record
from anomaly.risk import decided_ids, score_open
from revwatch.config import AnomalyConfig
from revwatch.store import Store, StoreError
from revwatch.units import utcnow

log = logging.getLogger("revwatch.anomaly")
RISK_KIND = "reconciliation_risk"
RISK_STATUS_KEY = "anomaly.reconciliation_status"      # the model summary or refusal of the latest scan
# A payment becomes a finding when it is more likely to fail than not: the model's probabilities are calibrated
# (reliability table in the model card), so 0.5 means "one in two such payments will need a person". The one
# default lives in the configuration (`anomaly.risk_threshold`).
RISK_THRESHOLD: float = AnomalyConfig.model_fields["risk_threshold"].default


def scan_risk(store: Store, retrain: bool = False, threshold: float = RISK_THRESHOLD) -> dict:
    """Score every open payment; those at or above `threshold` (a calibrated failure probability) are open
    findings, the others stay listed as `scored`; findings of payments that reached an outcome resolve.

    `money_at_risk` = amount paid × probability: what the anomalies page ranks by."""
    scored, summary = score_open(store, retrain=retrain)
    found = [Finding(RISK_KIND, p.correlation_id, p.payment_ref or p.correlation_id, round(prob, 4), reasons,
                     {"invoice_ref": p.invoice_ref, "customer_id": p.customer_id, "gateway": p.gateway,
                      "paid": f"{p.paid:.2f}", "currency": p.currency, "settled_at": p.settled_at.isoformat(),
                      "money_at_risk": f"{float(p.paid) * round(prob, 4):.2f}", "what_to_check": check,
                      "model": summary.get("model") or "", "model_version": str(summary.get("version", ""))})
             for p, prob, reasons, check in scored]
    outcomes = decided_ids(store)
    counts = record(store, RISK_KIND, found, list(outcomes), outcomes, threshold)
    store.put_state(RISK_STATUS_KEY, json.dumps(summary, default=str))
    return {**summary, **counts, "scored": len(found)}


def scan(store: Store, full: bool = False, retrain: bool = False, risk_threshold: float = RISK_THRESHOLD) -> dict:
    """Run every detector now; returns the scan's summary (findings per kind are the open ones after the scan)."""
    t0 = utcnow()
    out: dict = {"scanned_at": t0.isoformat()}
    for name, fn in (("billing_variance", lambda: scan_billing(store, full)),
                     ("reconciliation_model", lambda: scan_risk(store, retrain, risk_threshold)),
                     ("billing_aggregate", lambda: scan_aggregate(store))):
        try:
            out[name] = fn()
        except StoreError as e:
            log.warning("anomaly detector %s failed: %s", name, e)
            out[name] = {"error": str(e)}
    out["findings"] = findings.open_counts(store)
    out["seconds"] = round((utcnow() - t0).total_seconds(), 3)
    return out


def list_findings(store: Store, kind: str | None = None, limit: int = 100, **filters) -> list[dict]:
    """The first page of findings, highest score first (see anomaly.findings.list_findings for paging)."""
    return findings.list_findings(store, kind=kind, limit=limit, **filters)[0]


open_counts = findings.open_counts
