"""Acknowledging an anomaly finding: a new version of the finding with Status 'acknowledged'.

The `anomalies` table keeps versions of a finding by DetectedAt (readers take the latest per Kind, Id), so an
acknowledgement is an insert of the latest row with the new status and the acknowledging time — nothing is
rewritten, and who acknowledged (a key id, never a key) is kept in Details['acknowledged_by']. Re-scans write a
finding again with fresh numbers; they keep an acknowledged finding acknowledged (`acknowledgements`).
"""
from __future__ import annotations

from revwatch.store import Store
from revwatch.units import utcnow


def acknowledge(store: Store, finding_id: str, by: str) -> dict | None:
    """Mark the finding `finding_id` acknowledged; its new state, or None when there is no such finding."""
    rows = store.query(
        f"SELECT Kind, CorrelationId, Ref, Score, Reasons, Details, Status FROM {store.table('anomalies')} "
        f"WHERE Id = {{id:String}} ORDER BY DetectedAt DESC LIMIT 1", {"id": finding_id}).rows
    if not rows:
        return None
    kind, cid, ref, score, reasons, details, status = rows[0]
    if status == "acknowledged":
        return {"id": finding_id, "status": status}
    now = utcnow()
    details = {**details, "acknowledged_by": by, "acknowledged_at": now.isoformat()}
    store.insert("anomalies", [(finding_id, kind, now, cid, ref, score, reasons, details, "acknowledged")],
                 ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details", "Status"])
    return {"id": finding_id, "status": "acknowledged"}


def acknowledgements(store: Store, ids: list[str]) -> dict[str, dict[str, str]]:
    """Of these findings, the acknowledged ones with who/when: a re-scan keeps them acknowledged, never re-opens."""
    if not ids:
        return {}
    rows = store.query(
        f"SELECT Id, argMax(Details, DetectedAt) FROM {store.table('anomalies')} WHERE Id IN {{ids:Array(String)}} "
        f"GROUP BY Id HAVING argMax(Status, DetectedAt) = 'acknowledged'", {"ids": ids}).rows
    return {fid: {k: v for k, v in details.items() if k.startswith("acknowledged_")} for fid, details in rows}
