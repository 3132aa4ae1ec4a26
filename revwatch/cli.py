"""The `revwatch` command line (typer). Bad usage or config: one line on stderr, exit 2.

Commands that need data open the store directly when no server holds it, and otherwise go through the running
server's HTTP API (key from `REVWATCH_API_KEY`), saying which they did on stderr.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import httpx
import typer
from rich.console import Console

from revwatch.config import Config, ConfigError, load_config
from revwatch.store import StoreError, StoreLocked, store_from_config
from revwatch.units import parse_instant

app = typer.Typer(help="revwatch: business-journey SLOs and integration observability for subscription revenue.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Manage API keys (stored hashed).", no_args_is_help=True)
slo_app = typer.Typer(help="SLO status and Prometheus rule generation.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(slo_app, name="slo")
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 170)

ConfigOpt = typer.Option(None, "--config", "-c", help="config YAML (default: $REVWATCH_CONFIG or built-in defaults)")
JsonOpt = typer.Option(False, "--json", help="stable JSON output for scripts")


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit."""
    err.print(f"revwatch: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _config(path: Optional[Path]) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        fail(str(e))


class Remote:
    """Talks to a running `revwatch serve` when it holds the embedded store."""

    def __init__(self, cfg: Config):
        host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.base = f"http://{host}:{cfg.server.port}"
        self.key = os.environ.get("REVWATCH_API_KEY") or os.environ.get("REVWATCH_ADMIN_KEY")

    def request(self, method: str, path: str, **kw):
        """Call the server's API; exits 2 with one line when it cannot."""
        if not self.key:
            fail(f"the server at {self.base} holds the store; set REVWATCH_API_KEY to a key with the needed scope")
        try:
            r = httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {self.key}"},
                              timeout=60, **kw)
        except httpx.HTTPError as e:
            fail(f"the store is held by another process and its server at {self.base} does not answer ({e})")
        if r.status_code >= 400:
            try:
                msg = r.json().get("error", r.text)
            except ValueError:
                msg = r.text
            fail(f"server answered {r.status_code}: {msg}", 1 if r.status_code >= 500 else 2)
        return r.json()


def _local_or_remote(cfg: Config):
    """The opened store, or a Remote when a server holds it."""
    try:
        return store_from_config(cfg)
    except StoreLocked:
        err.print("[dim]store is held by a running server; using its API[/dim]")
        return Remote(cfg)
    except StoreError as e:
        fail(str(e), 1)


# --- serve / init ------------------------------------------------------------------------------------------
@app.command()
def serve(config: Optional[Path] = ConfigOpt, verbose: bool = typer.Option(False, "--verbose", "-v"),
          log_format: str = typer.Option("text", "--log-format", help="text | json (structured, with correlation IDs)"),
          role: Optional[str] = typer.Option(None, "--role", help="all | collector | evaluator (default: config)")):
    """Run the server: OTLP/HTTP + events ingest, journey lookup, SLO evaluation, probes, /metrics."""
    if log_format not in ("text", "json"):
        fail("--log-format must be text or json")
    if role not in (None, "all", "collector", "evaluator"):
        fail("--role must be all, collector or evaluator")
    cfg = _config(config)
    if role:
        cfg.server.role = role  # type: ignore[assignment]
    from revwatch.logs import setup_logging
    setup_logging(verbose, log_format)
    from revwatch.server import serve as run
    try:
        run(cfg)
    except StoreError as e:
        fail(str(e), 1)


@app.command()
def init(path: Path = typer.Argument(Path("revwatch.yaml"), help="where to write the example config"),
         force: bool = typer.Option(False, "--force", help="overwrite an existing file")):
    """Write a commented example config."""
    if path.exists() and not force:
        fail(f"{path} exists (use --force to overwrite)")
    example = Path(__file__).with_name("example-config.yaml").read_text()
    path.write_text(example)
    out.print(f"wrote {path}")


# --- keys --------------------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(scope: str = typer.Option(..., "--scope", help="ingest | read | admin"),
                name: str = typer.Option("", "--name", help="a label to recognise the key by"),
                config: Optional[Path] = ConfigOpt):
    """Create an API key and print it once (only its hash is stored)."""
    from revwatch.auth import SCOPES, KeyStore
    if scope not in SCOPES:
        fail(f"--scope must be one of {', '.join(SCOPES)}")
    cfg = _config(config)
    target = _local_or_remote(cfg)
    if isinstance(target, Remote):
        token = target.request("POST", "/api/v1/keys", json={"scope": scope, "name": name})["key"]
    else:
        token, _ = KeyStore(target).create(scope, name)
    err.print(f"created a {scope} key; it is shown once:")
    print(token)


@keys_app.command("list")
def keys_list(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """List key ids, scopes and states."""
    from revwatch.auth import KeyStore
    target = _local_or_remote(_config(config))
    keys = target.request("GET", "/api/v1/keys")["keys"] if isinstance(target, Remote) else KeyStore(target).list()
    if as_json:
        print(json.dumps(keys, default=str))
        return
    for k in keys:
        out.print(f"{k['id']}  {k['scope']:7} {'revoked' if k['revoked'] else 'active ':7} {k['name']}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: Optional[Path] = ConfigOpt):
    """Revoke a key by its id (the 8 characters after 'rw_')."""
    from revwatch.auth import KeyStore
    target = _local_or_remote(_config(config))
    if isinstance(target, Remote):
        target.request("DELETE", f"/api/v1/keys/{key_id}")
    elif not KeyStore(target).revoke(key_id):
        fail(f"no key with id {key_id!r}")
    out.print(f"revoked {key_id}")


# --- slo ---------------------------------------------------------------------------------------------------
def _at_param(at: Optional[str]):
    if at is None:
        return None
    try:
        return parse_instant(at)
    except ValueError as e:
        fail(f"--at: {e}")


@slo_app.command("status")
def slo_status(config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt,
               at: Optional[str] = typer.Option(None, "--at", help="evaluate as of this RFC 3339 instant")):
    """SLI, burn rates, budget and alert state of every SLO."""
    cfg = _config(config)
    when = _at_param(at)
    target = _local_or_remote(cfg)
    if isinstance(target, Remote):
        body = target.request("GET", "/api/v1/slos", params={"at": at} if at else None)
        docs, prom = body["slos"], body.get("prometheus_slos", [])
    else:
        from slo.engine import SloEngine
        from slo.spec import SpecError
        try:
            engine = SloEngine(target, cfg)
            docs = [r.as_dict() for r in engine.evaluate(when)]
            prom = engine.prometheus_results(when)
        except SpecError as e:
            fail(str(e))
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
    cfg = _config(config)
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
def slo_export(fmt: str = typer.Option("openslo", "--format", help="output format (openslo: OpenSLO v1 YAML)"),
               output: Optional[Path] = typer.Option(None, "-o", "--output", help="file to write (default stdout)"),
               config: Optional[Path] = ConfigOpt):
    """Every SLO (journey SLOs and imported ones) as OpenSLO v1 documents that import back to the same SLOs."""
    if fmt != "openslo":
        fail(f"--format: unknown format {fmt!r} (supported: openslo)")
    cfg = _config(config)
    from slo.export import export_openslo
    from slo.spec import SpecError, resolve
    try:
        text = export_openslo(resolve(cfg))
    except SpecError as e:
        fail(str(e))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        out.print(f"wrote {output}")


# --- trace -------------------------------------------------------------------------------------------------
@app.command()
def trace(correlation_id: str, config: Optional[Path] = ConfigOpt, as_json: bool = JsonOpt):
    """Everything that happened to one correlation ID, across systems, as a timeline."""
    cfg = _config(config)
    target = _local_or_remote(cfg)
    if isinstance(target, Remote):
        from urllib.parse import quote
        doc = target.request("GET", f"/api/v1/journeys/{quote(correlation_id, safe='')}")
    else:
        from collector.journeys import JourneyService, NotFound
        from slo.spec import journey_thresholds
        try:
            doc = JourneyService(target, cfg.journeys, journey_thresholds(cfg)).lookup(
                correlation_id)
        except NotFound:
            fail(f"nothing is recorded for correlation ID {correlation_id!r}", 1)
    if as_json:
        print(json.dumps(doc, default=str))
        return
    from revwatch.report import journey_timeline
    out.print(journey_timeline(doc))


def _register_optional_commands() -> None:
    """Commands of packages that are wired in when present (simulator, demo, anomaly, probes)."""
    from revwatch import commands  # noqa: F401  (registers on `app`)


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":          # `python -m revwatch.cli`: run the imported module's app, which has
    from revwatch.cli import main as _main   # every command registered (this __main__ copy does not)
    _main()
