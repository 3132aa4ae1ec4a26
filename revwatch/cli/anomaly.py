"""`revwatch anomaly scan|list|ack|series`: billing-variance and reconciliation-risk findings (from the store or
the server that holds it), and offline scoring of CSV series."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from revwatch.cli.app import ConfigOpt, JsonOpt, app, at_param, fail, load_cli_config, out
from revwatch.cli.target import FindingQuery, open_target

anomaly_app = typer.Typer(help="Billing-variance and reconciliation-risk findings.", no_args_is_help=True)
app.add_typer(anomaly_app, name="anomaly")


@anomaly_app.command("scan")
def anomaly_scan(config: Optional[Path] = typer.Option(None, "--config", "-c"),
                 as_json: bool = typer.Option(False, "--json"),
                 limit: int = typer.Option(10, "--limit", min=1, help="top findings to show")):
    """Run the detectors now and show the top findings."""
    summary, items = open_target(load_cli_config(config)).anomaly_scan(limit)
    if as_json:
        print(json.dumps({"summary": summary, "top": items}, default=str))
        return
    model = summary.get("reconciliation_model") or {}
    out.print(f"scan: {summary['findings'] or 'no findings'} open (reconciliation model: "
              f"{model.get('model') or model.get('refused') or model.get('error')})", markup=False)
    for f in items:
        out.print(f"  {f['score']:.2f}  {f['kind']:20} {f['correlation_id']:14} {f['ref']:18} "
                  f"{'; '.join(f['reasons'])}", markup=False)


@anomaly_app.command("list")
def anomaly_list(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
                 kind: Optional[str] = typer.Option(None, "--kind", help="billing_variance | reconciliation_risk | "
                                                                         "billing_aggregate | metric"),
                 status: Optional[str] = typer.Option(None, "--status", help="open | acknowledged | resolved | scored"),
                 cause: Optional[str] = typer.Option(None, "--cause"),
                 customer: Optional[str] = typer.Option(None, "--customer"),
                 since: Optional[str] = typer.Option(None, "--since", help="RFC 3339: first detected at or after"),
                 min_score: Optional[float] = typer.Option(None, "--min-score", min=0, max=1),
                 limit: int = typer.Option(0, "--limit", min=0, help="at most this many (0 = all, page by page)")):
    """List findings, highest score first, with their reasons (every page, unless --limit)."""
    from anomaly.findings import STATUSES
    from anomaly.routes import KINDS
    if kind and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}")
    if status and status not in STATUSES:
        fail(f"--status must be one of {', '.join(STATUSES)}")
    query = FindingQuery(kind, status, cause, customer, since, at_param(since or None, "--since"), min_score)
    target = open_target(load_cli_config(config))
    items: list[dict] = []
    cursor = None
    while True:
        page = min(1000, limit - len(items)) if limit else 1000
        batch, cursor = target.anomaly_list(query, page, cursor)
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
    doc = open_target(load_cli_config(config)).anomaly_ack(finding_id)
    if doc is None:
        fail(f"no finding with id {finding_id!r}", 1)
    print(json.dumps(doc, default=str)) if as_json else out.print(f"{doc['id']}: {doc['status']}")


@anomaly_app.command("series")
def anomaly_series(files: List[Path] = typer.Argument(..., help="CSV files with a timestamp,value header"),
                   output: Path = typer.Option(..., "-o", "--output", help="directory for <name>.csv with scores"),
                   as_json: bool = JsonOpt):
    """Score series offline with the causal metric detector (no server or store needed)."""
    from anomaly.series import SeriesError, read_csv, write_scored
    from anomaly.metric import score_series, to_seconds
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
        try:                                         # timestamps turn the seasonal (daily) term on
            seconds: list[float] | None = [to_seconds(t) for t in timestamps]
        except (ValueError, OverflowError):
            seconds = None
        scores = score_series(values, timestamps=seconds)
        target = output / f"{f.stem}.csv"
        try:
            write_scored(target, timestamps, values, scores)
        except OSError as e:
            fail(f"{target}: {e.strerror or e}", 1)
        top = max(range(len(scores)), key=scores.__getitem__) if scores else None
        report.append({"file": str(f), "output": str(target), "rows": len(values),
                       "max_score": round(scores[top], 4) if top is not None else None,
                       "max_at": timestamps[top] if top is not None else None,
                       "seasonal": seconds is not None})
    if as_json:
        print(json.dumps(report))
    else:
        for r in report:
            note = "" if r["seasonal"] else "; timestamps not ISO-8601: no daily term"
            out.print(f"{r['file']}: {r['rows']} rows → {r['output']} (highest score {r['max_score']} at "
                      f"{r['max_at']}{note})", markup=False)
