"""Anomaly detectors over business events (scikit-learn): billing variance and reconciliation-failure risk.

Billing variance: within one transaction (correlation ID) the subscription / order event carries the amount
expected for the period (DESIGN.md §4) and invoice.created the amount billed. Each invoice gets its relative
variance; an IsolationForest over (variance, implied unit price vs the plan's median, log amount) scores how
unusual it is against the rest, and any variance beyond half a percent is a finding with its numbers as reasons.

Reconciliation risk: payments whose outcome is known (payment.reconciled vs payment.reconciliation_failed) train
a logistic regression on features an accountant would look at — invoice reference missing, paid / invoiced
ratio, fee share, other payments for the same invoice, posting delay, gateway. Payments still waiting for an
outcome are scored; the features that push a score up are its reasons. With only one outcome class in history
the model cannot be trained, and explicit rules score instead (said in the reasons).
"""
from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from anomaly.ack import acknowledgements
from revwatch.store import Store
from revwatch.units import utcnow

VARIANCE_TOLERANCE = 0.005
RISK_THRESHOLD = 0.5


def _id(kind: str, key: str) -> str:
    return hashlib.sha1(f"{kind}:{key}".encode()).hexdigest()[:20]


def billing_variance(store: Store, since: dt.datetime) -> list[dict]:
    """Invoices whose total differs from what their subscription or order said to expect."""
    rows = store.query(f"""
        SELECT CorrelationId,
               argMinIf(toFloat64(Amount), OccurredAt, Type IN ('subscription.renewed', 'subscription.activated',
                        'subscription.amended', 'order.booked')) AS expected,
               argMinIf(toFloat64(Amount), OccurredAt, Type = 'invoice.created') AS billed,
               anyIf(Attributes['invoice_ref'], Type = 'invoice.created') AS invoice_ref,
               anyIf(Attributes['plan'], Type != 'invoice.created') AS plan,
               anyIf(toFloat64OrZero(Attributes['quantity']), Type != 'invoice.created') AS quantity,
               anyIf(Attributes['customer_id'], Type = 'invoice.created') AS customer,
               max(OccurredAt) AS at
        FROM (SELECT * FROM {store.table('events')}
              WHERE OccurredAt >= {{since:DateTime64(3, 'UTC')}} AND Amount IS NOT NULL
                AND Type IN ('invoice.created', 'subscription.renewed', 'subscription.activated',
                             'subscription.amended', 'order.booked')
              LIMIT 1 BY EventId)
        GROUP BY CorrelationId
        HAVING countIf(Type = 'invoice.created') > 0 AND countIf(Type != 'invoice.created') > 0 AND expected > 0
    """, {"since": since}).rows
    if not rows:
        return []
    rel = np.array([(b - e) / e for _, e, b, *_ in rows])
    unit = np.array([b / q if q else b for _, _, b, _, _, q, _, _ in rows])
    plans = [r[4] for r in rows]
    med = {p: float(np.median([u for u, pp in zip(unit, plans) if pp == p])) for p in set(plans)}
    unit_dev = np.array([(u - med[p]) / med[p] if med[p] else 0.0 for u, p in zip(unit, plans)])
    X = np.column_stack([rel, unit_dev, np.log1p(np.abs([r[2] for r in rows]))])
    scores = np.zeros(len(rows))
    if len(rows) >= 20:
        forest = IsolationForest(n_estimators=100, random_state=0).fit(X)
        raw = -forest.score_samples(X)                       # higher = more isolated
        scores = (raw - raw.min()) / (raw.max() - raw.min() or 1)
    out = []
    for i, (cid, expected, billed, inv, plan, qty, customer, at) in enumerate(rows):
        if abs(rel[i]) <= VARIANCE_TOLERANCE:
            continue
        reasons = [f"invoice {inv or '?'} totals {billed:.2f} but {expected:.2f} was expected ({rel[i]:+.1%})"]
        if abs(unit_dev[i]) > VARIANCE_TOLERANCE:
            reasons.append(f"implied unit price {unit[i]:.2f} vs {med[plan]:.2f} typical for plan {plan or '?'}")
        score = max(min(1.0, abs(rel[i]) / 0.2), float(scores[i]))
        out.append({"id": _id("billing_variance", cid), "kind": "billing_variance", "correlation_id": cid,
                    "ref": inv, "score": round(score, 4), "reasons": reasons, "at": at,
                    "details": {"expected": f"{expected:.2f}", "billed": f"{billed:.2f}", "plan": plan,
                                "customer_id": customer, "variance_ratio": f"{rel[i]:.6f}"}})
    return out


_FEATURES = ("missing_invoice_ref", "paid_ratio_gap", "fee_share", "payments_for_invoice", "posting_delay_h",
             "gateway_adyen")
_EXPLAIN = {"missing_invoice_ref": "no invoice reference on the payment",
            "paid_ratio_gap": "amount paid differs from the invoice total",
            "fee_share": "gateway fee share is unusual",
            "payments_for_invoice": "more than one payment for the same invoice",
            "posting_delay_h": "slow posting in Odoo",
            "gateway_adyen": "gateway mix"}


def _payment_features(store: Store, since: dt.datetime) -> list[dict]:
    rows = store.query(f"""
        WITH invoices AS (
            SELECT Attributes['invoice_ref'] AS ref, any(toFloat64(Amount)) AS total
            FROM {store.table('events')} WHERE Type = 'invoice.created' AND OccurredAt >= {{since:DateTime64(3, 'UTC')}}
            GROUP BY ref),
        payments AS (
            SELECT CorrelationId,
                   anyIf(Attributes['invoice_ref'], Type = 'payment.settled') AS ref,
                   anyIf(toFloat64(Amount), Type = 'payment.settled') AS paid,
                   anyIf(toFloat64OrZero(Attributes['fee']), Type = 'payment.settled') AS fee,
                   anyIf(Attributes['gateway'], Type = 'payment.settled') AS gateway,
                   anyIf(Attributes['payment_ref'], Type = 'payment.settled') AS payment_ref,
                   minIf(OccurredAt, Type = 'payment.settled') AS settled,
                   minIf(OccurredAt, Type = 'payment.posted') AS posted,
                   countIf(Type = 'payment.posted') > 0 AS has_posted,
                   multiIf(countIf(Type = 'payment.reconciliation_failed') > 0, 1,
                           countIf(Type = 'payment.reconciled') > 0, 0, -1) AS outcome
            FROM (SELECT * FROM {store.table('events')}
                  WHERE Type IN ('payment.settled', 'payment.posted', 'payment.reconciled',
                                 'payment.reconciliation_failed') AND OccurredAt >= {{since:DateTime64(3, 'UTC')}}
                  LIMIT 1 BY EventId)
            GROUP BY CorrelationId HAVING countIf(Type = 'payment.settled') > 0)
        SELECT p.CorrelationId, p.ref, p.paid, p.fee, p.gateway, p.payment_ref, p.settled, p.posted, p.has_posted,
               p.outcome, i.total, count() OVER (PARTITION BY p.ref) AS same_ref
        FROM payments AS p LEFT JOIN invoices AS i ON i.ref = p.ref
    """, {"since": since}).rows
    out = []
    for cid, ref, paid, fee, gw, pref, settled, posted, has_posted, outcome, total, same_ref in rows:
        delay = (posted - settled).total_seconds() / 3600 if has_posted else 0.0
        out.append({"cid": cid, "ref": pref or ref, "invoice_ref": ref, "outcome": outcome, "at": settled,
                    "missing_invoice_ref": float(not ref),
                    "paid_ratio_gap": abs(paid / total - 1) if ref and total else 0.0,
                    "fee_share": fee / paid if paid else 0.0,
                    "payments_for_invoice": float(same_ref - 1) if ref else 0.0,
                    "posting_delay_h": max(0.0, delay), "gateway_adyen": float(gw == "adyen"),
                    "paid": paid, "total": total})
    return out


def reconciliation_risk(store: Store, since: dt.datetime) -> tuple[list[dict], dict]:
    """Open payments scored for reconciliation failure; returns (findings, model summary)."""
    feats = _payment_features(store, since)
    decided = [f for f in feats if f["outcome"] >= 0]
    open_ = [f for f in feats if f["outcome"] < 0]
    X_all = lambda fs: np.array([[f[k] for k in _FEATURES] for f in fs], dtype=float)  # noqa: E731
    labels = np.array([f["outcome"] for f in decided])
    summary = {"payments": len(feats), "decided": len(decided), "open": len(open_),
               "failures_in_history": int(labels.sum()) if len(labels) else 0, "model": "rules"}
    model = scaler = None
    if len(decided) >= 20 and 0 < labels.sum() < len(labels):
        scaler = StandardScaler().fit(X_all(decided))
        model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(scaler.transform(X_all(decided)), labels)
        summary["model"] = "logistic_regression"
        summary["train_accuracy"] = round(float(model.score(scaler.transform(X_all(decided)), labels)), 4)
    out = []
    if not open_:
        return out, summary
    X = X_all(open_)
    if model is not None:
        z = scaler.transform(X)
        probs = model.predict_proba(z)[:, 1]
        contrib = z * model.coef_[0]
    else:
        rule = (X[:, 0] * 0.9 + np.minimum(X[:, 1] * 5, 0.9) + np.minimum(X[:, 3] * 0.8, 0.9))
        probs = np.minimum(rule, 1.0)
        contrib = X
    for f, p, c in zip(open_, probs, contrib):
        if p < RISK_THRESHOLD:
            continue
        top = [k for _, k in sorted(zip(c, _FEATURES), reverse=True) if f[k] > 0][:3]
        reasons = [_EXPLAIN[k] + (f" ({f['paid']:.2f} of {f['total']:.2f})" if k == "paid_ratio_gap" and f["total"]
                                  else "") for k in top]
        if model is None:
            reasons.append("rule-based score: no failure/success history to train on yet")
        out.append({"id": _id("reconciliation_risk", f["cid"]), "kind": "reconciliation_risk",
                    "correlation_id": f["cid"], "ref": f["ref"] or "", "score": round(float(p), 4),
                    "reasons": reasons or ["model score"], "at": f["at"],
                    "details": {"invoice_ref": f["invoice_ref"] or "", "model": summary["model"]}})
    return out, summary


def scan(store: Store, lookback: dt.timedelta = dt.timedelta(days=30)) -> dict:
    """Run every detector, store findings (re-scans replace earlier findings of the same item)."""
    now = utcnow()
    since = now - lookback
    t0 = now
    findings = billing_variance(store, since)
    risk, model = reconciliation_risk(store, since)
    findings += risk
    acked = acknowledgements(store, [f["id"] for f in findings])     # acknowledged findings stay acknowledged
    store.insert("anomalies", [(f["id"], f["kind"], now, f["correlation_id"], f["ref"], f["score"], f["reasons"],
                                {**{k: str(v) for k, v in f["details"].items()}, **acked.get(f["id"], {})},
                                "acknowledged" if f["id"] in acked else "open") for f in findings],
                 ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details", "Status"])
    by_kind: dict[str, int] = {}
    for f in findings:
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + 1
    return {"scanned_at": now.isoformat(), "since": since.isoformat(), "findings": by_kind,
            "reconciliation_model": model, "seconds": round((utcnow() - t0).total_seconds(), 3)}


def list_findings(store: Store, kind: str | None = None, since: dt.datetime | None = None,
                  limit: int = 100) -> list[dict]:
    """Latest findings, highest score first."""
    where = ["1"]
    params: dict = {"limit": limit}
    if kind:
        where.append("Kind = {kind:String}")
        params["kind"] = kind
    if since:
        where.append("DetectedAt >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    rows = store.query(f"""
        SELECT Id, Kind, DetectedAt, CorrelationId, Ref, Score, Reasons, Details, Status
        FROM (SELECT * FROM {store.table('anomalies')} ORDER BY DetectedAt DESC LIMIT 1 BY Kind, Id)
        WHERE {' AND '.join(where)} ORDER BY Score DESC, DetectedAt DESC LIMIT {{limit:UInt32}}""", params).dicts()
    return [{"id": r["Id"], "kind": r["Kind"], "detected_at": r["DetectedAt"].isoformat() + "Z",
             "correlation_id": r["CorrelationId"], "ref": r["Ref"], "score": r["Score"], "reasons": r["Reasons"],
             "details": r["Details"], "status": r["Status"]} for r in rows]


def open_counts(store: Store) -> dict[str, int]:
    """Open findings per kind (for revwatch_anomalies_open)."""
    rows = store.query(f"SELECT Kind, count() FROM (SELECT Kind, Id, argMax(Status, DetectedAt) AS s "
                       f"FROM {store.table('anomalies')} GROUP BY Kind, Id) WHERE s = 'open' GROUP BY Kind").rows
    return {k: int(n) for k, n in rows}
