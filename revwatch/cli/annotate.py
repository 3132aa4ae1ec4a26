"""`revwatch annotate TEXT`: an annotation (deploy, Odoo upgrade, incident) on the SLO charts, in the store or
through the server that holds it (docs/slo-policy.md#annotations)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from revwatch.cli.app import ConfigOpt, JsonOpt, app, at_param, load_cli_config, out
from revwatch.cli.target import open_target
from revwatch.units import utcnow


@app.command("annotate")
def annotate(text: str = typer.Argument(..., help="what happened, e.g. 'deploy billing 4.2.1'"),
             config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
             at: Optional[str] = typer.Option(None, "--at", help="RFC 3339 instant (default now)"),
             slo: List[str] = typer.Option([], "--slo", help="an SLO it concerns (repeatable; default every SLO)"),
             tag: List[str] = typer.Option([], "--tag", help="a tag: deploy, odoo-upgrade, incident … (repeatable)")):
    """Put an annotation on the SLO charts (and Grafana's), returned with evaluations around it."""
    when = at_param(at) or utcnow()
    doc = open_target(load_cli_config(config)).annotate({"time": when.isoformat(), "text": text, "slos": slo,
                                                         "tags": tag})
    if as_json:
        print(json.dumps(doc, default=str))
        return
    scope = ", ".join(doc["slos"]) or "every SLO"
    out.print(f"annotated {doc['time']} ({scope}): {doc['text']}", markup=False)
