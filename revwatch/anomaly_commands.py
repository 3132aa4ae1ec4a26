"""CLI commands of the anomaly package beyond `anomaly scan`: `anomaly list`, `anomaly ack`, `anomaly series`.

Registered on the `anomaly` sub-app of revwatch.commands (imported from there)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from revwatch.cli import ConfigOpt, JsonOpt, Remote, _config, _local_or_remote, fail, out
from revwatch.commands import anomaly_app


@anomaly_app.command("list")
def anomaly_list(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
                 kind: Optional[str] = typer.Option(None, "--kind", help="billing_variance | reconciliation_risk | "
                                                                         "billing_aggregate | metric"),
                 status: Optional[str] = typer.Option(None, "--status", help="open | acknowledged | resolved"),
                 cause: Optional[str] = typer.Option(None, "--cause"),
                 customer: Optional[str] = typer.Option(None, "--customer"),
                 since: Optional[str] = typer.Option(None, "--since", help="RFC 3339: first detected at or after"),
                 min_score: Optional[float] = typer.Option(None, "--min-score", min=0, max=1),
                 limit: int = typer.Option(0, "--limit", min=0, help="at most this many (0 = all, page by page)")):
    """List findings, highest score first, with their reasons (every page, unless --limit)."""
    from anomaly.findings import STATUSES, CursorError, list_findings
    from anomaly.routes import KINDS
    from revwatch.units import parse_instant
    if kind and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}")
    if status and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}")
    try:
        since_at = parse_instant(since) if since else None
    except ValueError as e:
        fail(f"--since: {e}")
    target = _local_or_remote(_config(config))
    items: list[dict] = []
    cursor = None
    while True:
        page = min(1000, limit - len(items)) if limit else 1000
        if isinstance(target, Remote):
            params = {k: v for k, v in {"kind": kind, "status": status, "cause": cause, "customer": customer,
                                        "since": since, "min_score": min_score, "limit": page,
                                        "cursor": cursor}.items() if v is not None}
            doc = target.request("GET", "/api/v1/anomalies", params=params)
            batch, cursor = doc["items"], doc.get("next_cursor")
        else:
            try:
                batch, cursor = list_findings(target, kind, status, cause, customer, since_at, min_score, page, cursor)
            except CursorError as e:
                fail(str(e))
        items += batch
        if not cursor or (limit and len(items) >= limit):
            break
    if as_json:
        print(json.dumps({"items": items}, default=str))
        return
    if not items:
        out.print("no findings")
    for f in items:
        out.print(f"{f['score']:.2f}  {f['status']:12} {f['kind']:19} {f['cause'] or '-':18} {f['ref'] or '-':18} "
                  f"{f['correlation_id']:14} {'; '.join(f['reasons'])}", markup=False)


@anomaly_app.command("ack")
def anomaly_ack(finding_id: str, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """Acknowledge a finding (kept through re-scans until it resolves)."""
    from anomaly.findings import acknowledge
    target = _local_or_remote(_config(config))
    doc = (target.request("POST", f"/api/v1/anomalies/{finding_id}/ack") if isinstance(target, Remote)
           else acknowledge(target, finding_id))
    if doc is None:
        fail(f"no finding with id {finding_id!r}", 1)
    print(json.dumps(doc, default=str)) if as_json else out.print(f"{doc['id']}: {doc['status']}")


@anomaly_app.command("series")
def anomaly_series(files: List[Path] = typer.Argument(..., help="CSV files with a timestamp,value header"),
                   output: Path = typer.Option(..., "-o", "--output", help="directory for <name>.csv with scores"),
                   as_json: bool = JsonOpt):
    """Score series offline with the causal metric detector (no server or store needed)."""
    from anomaly.series import SeriesError, read_csv, write_scored
    from anomaly.metric import score_series
    loaded = []
    for f in files:                                  # read everything first: a bad file writes nothing
        try:
            loaded.append((f, *read_csv(f)))
        except SeriesError as e:
            fail(str(e))
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"-o {output}: {e.strerror or e}")
    report = []
    for f, timestamps, values in loaded:
        scores = score_series(values)
        target = output / f"{f.stem}.csv"
        try:
            write_scored(target, timestamps, values, scores)
        except OSError as e:
            fail(f"{target}: {e.strerror or e}", 1)
        top = max(range(len(scores)), key=scores.__getitem__) if scores else None
        report.append({"file": str(f), "output": str(target), "rows": len(values),
                       "max_score": round(scores[top], 4) if top is not None else None,
                       "max_at": timestamps[top] if top is not None else None})
    if as_json:
        print(json.dumps(report))
    else:
        for r in report:
            out.print(f"{r['file']}: {r['rows']} rows → {r['output']} (highest score {r['max_score']} at "
                      f"{r['max_at']})", markup=False)
