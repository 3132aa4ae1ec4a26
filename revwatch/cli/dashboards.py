"""`revwatch dashboards export -o DIR`: the Grafana JSON and provisioning files, for a user who installed
revwatch from a wheel and has no `dashboards/json/` checkout. Needs neither the store nor a server. With a config
(`--config`, $REVWATCH_CONFIG or ./revwatch.yaml) the burn-rate panels draw its SLOs' alert tiers."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from revwatch.cli.app import ConfigOpt, app, fail, load_cli_config, out
from revwatch.config import config_path

dashboards_app = typer.Typer(help="Grafana dashboards over revwatch's Prometheus metrics.", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command("export")
def dashboards_export(output: Path = typer.Option(..., "-o", "--output", help="directory to write into"),
                      folder_path: str = typer.Option("/var/lib/grafana/dashboards/revwatch", "--dashboards-path",
                                                      help="where Grafana will read the dashboard JSON from "
                                                           "(written into the dashboard provider)"),
                      config: Optional[Path] = ConfigOpt):
    """Write the Grafana dashboards and provisioning files (data source URL from $PROMETHEUS_URL in Grafana).

    Layout: DIR/dashboards/*.json, DIR/provisioning/dashboards/revwatch.yaml,
    DIR/provisioning/datasources/revwatch.yaml (see docs/grafana.md)."""
    from dashboards.grafana import TierLine, export
    if output.exists() and not output.is_dir():
        fail(f"{output} exists and is not a directory")
    tiers = None
    if config_path(config) is not None:       # draw the configured alert tiers (else the 30-day catalogue's)
        from revwatch.units import format_duration
        from slo.spec import SpecError, resolve
        try:
            specs = resolve(load_cli_config(config))
        except SpecError as e:
            fail(str(e))
        tiers = [TierLine(s.name, t.severity, format_duration(t.long), format_duration(t.short), t.burn_rate)
                 for s in specs if not s.is_prometheus for t in s.tiers] or None
    try:
        paths = export(output, folder_path, tiers)
    except OSError as e:
        fail(f"cannot write to {output}: {e.strerror}", 1)
    for p in paths:
        out.print(f"wrote {p}", markup=False, highlight=False)
