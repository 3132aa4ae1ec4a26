"""`revwatch dashboards export -o DIR`: the Grafana JSON and provisioning files, for a user who installed
revwatch from a wheel and has no `dashboards/json/` checkout. Needs neither the store nor a server."""
from __future__ import annotations

from pathlib import Path

import typer

from revwatch.cli.app import app, fail, out

dashboards_app = typer.Typer(help="Grafana dashboards over revwatch's Prometheus metrics.", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command("export")
def dashboards_export(output: Path = typer.Option(..., "-o", "--output", help="directory to write into"),
                      folder_path: str = typer.Option("/var/lib/grafana/dashboards/revwatch", "--dashboards-path",
                                                      help="where Grafana will read the dashboard JSON from "
                                                           "(written into the dashboard provider)")):
    """Write the Grafana dashboards and provisioning files (data source URL from $PROMETHEUS_URL in Grafana).

    Layout: DIR/dashboards/*.json, DIR/provisioning/dashboards/revwatch.yaml,
    DIR/provisioning/datasources/revwatch.yaml (see docs/grafana.md)."""
    from dashboards.grafana import export
    if output.exists() and not output.is_dir():
        fail(f"{output} exists and is not a directory")
    try:
        paths = export(output, folder_path)
    except OSError as e:
        fail(f"cannot write to {output}: {e.strerror}", 1)
    for p in paths:
        out.print(f"wrote {p}", markup=False, highlight=False)
