"""`revwatch slo status|rules|export`: SLO state (from the store or the server), Prometheus rules, OpenSLO."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from revwatch.cli.app import ConfigOpt, JsonOpt, app, at_param, fail, load_cli_config, out
from revwatch.cli.target import open_target

slo_app = typer.Typer(help="SLO status and Prometheus rule generation.", no_args_is_help=True)
app.add_typer(slo_app, name="slo")


@slo_app.command("status")
def slo_status(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
               at: Optional[str] = typer.Option(None, "--at", help="evaluate as of this RFC 3339 instant")):
    """SLI, burn rates, budget and alert state of every SLO."""
    cfg = load_cli_config(config)
    when = at_param(at)
    docs, prom = open_target(cfg).slo_status(at, when)
    if as_json:
        print(json.dumps({"slos": docs, "prometheus_slos": prom}, default=str))
        return
    from revwatch.report import slo_table
    out.print(slo_table(docs))


@slo_app.command("rules")
def slo_rules(output: Path = typer.Option(..., "-o", "--output", help="directory for the rule files"),
              config: Optional[Path] = ConfigOpt,
              base_url: str = typer.Option("", "--base-url", help="revwatch URL for links in annotations "
                                                                   "(default: server.external_url)")):
    """Write Prometheus alerting rules (page + ticket per SLO) that pass `promtool check rules`."""
    cfg = load_cli_config(config)
    from slo.rules import write_rules
    from slo.spec import SpecError, resolve
    try:
        specs = resolve(cfg)
    except SpecError as e:
        fail(str(e))
    if not specs:
        fail("no SLOs configured (add slos: to the config)")
    base = base_url or cfg.server.external_url
    for p in write_rules(specs, output, base):
        out.print(f"wrote {p}")


@slo_app.command("export")
def slo_export(fmt: str = typer.Option("openslo", "--format", help="output format (openslo: OpenSLO v1 YAML, "
                                      "composites left out; openslo-adjustments: the config's budget adjustments as "
                                      "v2alpha YAML; openslo-v2alpha: composite SLOs and budget adjustments as "
                                      "v2alpha YAML)"),
               output: Optional[Path] = typer.Option(None, "-o", "--output", help="file to write (default stdout)"),
               config: Optional[Path] = ConfigOpt):
    """Every SLO (journey SLOs and imported ones) as OpenSLO v1 documents that import back to the same SLOs."""
    if fmt not in ("openslo", "openslo-adjustments", "openslo-v2alpha"):
        fail(f"--format: unknown format {fmt!r} (supported: openslo, openslo-adjustments, openslo-v2alpha)")
    cfg = load_cli_config(config)
    from slo.export import export_openslo
    from slo.spec import SpecError, resolve
    try:
        specs = resolve(cfg)
        if fmt in ("openslo-adjustments", "openslo-v2alpha"):    # docs/slo-policy.md (slo/openslo_v2.py)
            from slo.adjustments import declared
            from slo.openslo_v2 import export_v2alpha
            text = export_v2alpha(specs if fmt == "openslo-v2alpha" else [], declared(cfg, [s.name for s in specs]),
                                  {s.name: s.ownership.service for s in specs})
        else:
            text = export_openslo(specs)
    except SpecError as e:
        fail(str(e))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(f"wrote {output}")


@slo_app.command("forecast")
def slo_forecast(name: str = typer.Argument(..., help="a journey SLO"), config: Optional[Path] = ConfigOpt,
                 as_json: bool = JsonOpt):
    """In-flight instances of a journey SLO that will breach at the current step pace, when, their money and
    whether the budget will run out soon (the API's GET /api/v1/slos/{name}/forecast)."""
    cfg = load_cli_config(config)
    docs = open_target(cfg).forecast(name)
    if as_json:
        print(json.dumps({"name": name, "forecasts": docs}, default=str))
        return
    for d in docs:
        money = " + ".join(f"{v} {c}" for c, v in d["money_at_risk"].items()) or "no amounts"
        hours = d["exhausted_within_hours"]
        when = "budget not forecast to run out" if hours is None else f"budget exhausted in {hours:.2f} h"
        group = f" [{d['group']}]" if d["group"] else ""
        first = d["first_breach_at"] or "–"
        out.print(f"{name}{group}: {d['in_flight']} in flight, {d['predicted_breaches']} will breach "
                  f"({d['stuck']} stuck), first at {first}; {money}; {when}{' — PAGE' if d['page'] else ''}",
                  markup=False, highlight=False)
