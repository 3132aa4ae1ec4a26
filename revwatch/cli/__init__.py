"""The `revwatch` command line as a package: `app` (the typer app with every command group registered) and
`main` (the console script `revwatch = "revwatch.cli:main"`, also `python -m revwatch` and `python -m revwatch.cli`).

Only this module imports the command modules; each of them registers its commands on the root app of
`revwatch.cli.app` when imported. The import order below is the order of the commands in `--help`."""
from revwatch.cli.app import app, main
from revwatch.cli import serve, init, keys, slo, trace, sim, anomaly, probes, journeys, dashboards, deadletters, annotate  # noqa: F401,E401,E501

__all__ = ["app", "main"]
