"""The `revwatch` command line (typer). Bad usage or config: one line on stderr, exit 2.

Commands that need data open the store directly when no server holds it, and otherwise go through the running
server's HTTP API (key from `REVWATCH_API_KEY`), saying which they did on stderr.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

import httpx
import typer
from rich.console import Console

from revwatch.config import DEFAULT_CONFIG_FILE, Config, ConfigError, load_config
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

ConfigOpt = typer.Option(None, "--config", "-c",
                         help="config YAML (default: $REVWATCH_CONFIG, else ./revwatch.yaml, else built-in defaults)")
JsonOpt = typer.Option(False, "--json", help="stable JSON output for scripts")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit."""
    err.print(f"revwatch: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _config(path: Optional[Path]) -> Config:
    """The validated config, SLO specs included (OpenSLO files too), or exit 2 with one line."""
    try:
        cfg = load_config(path)
    except ConfigError as e:
        fail(str(e))
    from slo.spec import SpecError, resolve
    try:
        resolve(cfg)
    except SpecError as e:
        fail(f"{cfg.source_path or '<defaults>'}: {e}")
    return cfg


def _key_from_env(scope: str) -> str | None:
    """The key the CLI presents for a route of `scope`: REVWATCH_<SCOPE>_KEY, else REVWATCH_API_KEY, else an
    admin key (admin grants every scope)."""
    env = os.environ
    return env.get(f"REVWATCH_{scope.upper()}_KEY") or env.get("REVWATCH_API_KEY") or env.get("REVWATCH_ADMIN_KEY")


class Remote:
    """Talks to a running `revwatch serve` when it holds the embedded store."""

    def __init__(self, cfg: Config):
        host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.base = f"http://{host}:{cfg.server.port}"
        self.key = os.environ.get("REVWATCH_API_KEY") or os.environ.get("REVWATCH_ADMIN_KEY")

    def request(self, method: str, path: str, scope: str | None = None, **kw):
        """Call the server's API; exits 2 with one line when it cannot. `scope` picks the key (see _key_from_env);
        by default admin for writes and keys, read otherwise."""
        scope = scope or ("admin" if method != "GET" or path.startswith("/api/v1/keys") else "read")
        key = _key_from_env(scope) or self.key
        if not key:
            fail(f"the server at {self.base} holds the store; set REVWATCH_{scope.upper()}_KEY (or REVWATCH_API_KEY) "
                 f"to a key with scope '{scope}'")
        try:
            r = httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {key}"},
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
    problem = port_problem(cfg.server.host, cfg.server.port)
    if problem:                         # before migrations and before saying "listening"
        fail(problem, 1)
    from revwatch.logs import setup_logging
    setup_logging(verbose, log_format)
    from revwatch.server import serve as run
    try:
        run(cfg)
    except StoreError as e:
        fail(str(e), 1)
    err.print("revwatch: server stopped", markup=False, highlight=False)


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (in use, not permitted, unknown address), or None."""
    import errno
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot listen on {host}:{port}: {e.strerror}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn does: TIME_WAIT is not "in use"
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use (another revwatch serve?); stop it or set "
                        f"server.port in the config / REVWATCH_PORT")
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None


@app.command()
def init(path: Optional[Path] = typer.Argument(None, help="where to write the config "
                                                         "(default: $REVWATCH_CONFIG, else ./revwatch.yaml)"),
         force: bool = typer.Option(False, "--force", help="overwrite an existing file"),
         keys: bool = typer.Option(True, "--keys/--no-keys", help="create an ingest, a read and an admin key")):
    """Write a commented config and create one key per scope (printed once, with the commands to use them)."""
    path = path or Path(os.environ.get("REVWATCH_CONFIG") or DEFAULT_CONFIG_FILE)
    if path.exists() and not force:
        fail(f"{path} exists (use --force to overwrite it, or `revwatch keys create --scope S` for more keys)")
    if path.parent != Path("") and not path.parent.is_dir():
        fail(f"{path.parent} is not a directory")
    example = Path(__file__).with_name("example-config.yaml").read_text()
    path.write_text(example)
    cfg = _config(path)
    out.print(f"wrote {path} (store: {cfg.store_dsn})", markup=False, highlight=False)
    if keys:
        _print_new_keys(cfg, path)


def cli_path() -> str:
    """How the user should type this CLI: `revwatch` when that is on PATH and is this program, else its path
    (relative to the current directory when inside it, e.g. `.venv/bin/revwatch`)."""
    import shutil
    me = Path(sys.argv[0]).absolute()
    found = shutil.which("revwatch")
    if found and Path(found).resolve() == me.resolve():
        return "revwatch"
    try:
        return str(me.relative_to(Path.cwd()))
    except ValueError:
        return str(me)


def _print_new_keys(cfg: Config, config_file: Path) -> None:
    """Create an ingest, a read and an admin key in the config's store and print them once, with their use."""
    from revwatch.auth import KeyStore
    try:
        store = store_from_config(cfg)
    except StoreLocked:
        fail("the store is held by a running server; create keys with `revwatch keys create --scope S` "
             "and REVWATCH_ADMIN_KEY", 1)
    except StoreError as e:
        fail(str(e), 1)
    ks = KeyStore(store)
    made = {scope: ks.create(scope, f"{scope} (revwatch init)")[0] for scope in ("ingest", "read", "admin")}
    rw = cli_path()
    cfg_arg = "" if config_file.resolve() == Path(DEFAULT_CONFIG_FILE).resolve() else f" --config {config_file}"
    base = f"http://{cfg.server.host}:{cfg.server.port}"
    out.print(f"""created an ingest, a read and an admin key; they are shown only now (the store keeps their hashes):
  ingest  {made['ingest']}   send events and traces
  read    {made['read']}   SLO status, journeys, /metrics
  admin   {made['admin']}   keys, anomaly scans (and everything else)

use them:
  export REVWATCH_INGEST_KEY={made['ingest']}
  export REVWATCH_READ_KEY={made['read']}
  export REVWATCH_ADMIN_KEY={made['admin']}
  {rw} serve{cfg_arg}                      # {base}
  {rw} simulate{cfg_arg} --days 1          # a simulated business, sent with the ingest key
  {rw} slo status{cfg_arg}                 # goes through the server while it runs (read key)
  curl -H "Authorization: Bearer $REVWATCH_READ_KEY" {base}/api/v1/slos""", markup=False, highlight=False)


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
    article = "an" if scope[0] in "aeiou" else "a"
    err.print(f"created {article} {scope} key; it is shown only now (the store keeps its hash):", markup=False)
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
    if not keys:
        out.print("no keys yet: `revwatch keys create --scope ingest|read|admin` (or `revwatch init`)", markup=False)
        return
    out.print(f"{'ID':8}  {'SCOPE':7}  {'STATE':7}  {'CREATED (UTC)':19}  NAME", markup=False, highlight=False)
    for k in keys:
        created = str(k.get("created_at", ""))[:19].replace("T", " ")
        out.print(f"{k['id']:8}  {k['scope']:7}  {'revoked' if k['revoked'] else 'active':7}  {created:19}  "
                  f"{k['name']}", markup=False, highlight=False)


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
def _at_param(at: Optional[str], option: str = "--at"):
    if at is None:
        return None
    try:
        return parse_instant(at)
    except ValueError as e:
        fail(f"{option}: {e}")


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
    from revwatch import commands_views  # noqa: F401  (journeys search, dashboards export)


_register_optional_commands()


def _goodbye() -> None:
    """Say goodbye and leave with 130 at once. Background threads (spool writer, scheduler, dispatcher) may still be
    inside the embedded ClickHouse engine; a normal interpreter shutdown tears chDB down under them (a segfault
    seen on Ctrl-C during the demo). Leaving without finalizers loses nothing: what was acknowledged is fsync'd
    in the spool or already inserted, and the spool replays the rest on the next start."""
    err.print("\nrevwatch: interrupted (Ctrl-C); bye", markup=False, highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point. Usage errors are one line on stderr with exit 2 (click's own multi-line box
    is replaced), Ctrl-C is a one-line goodbye with exit 130."""
    try:
        from typer._click import exceptions as click        # typer >= 0.2x vendors its own click
    except ImportError:                                      # pragma: no cover - older typer on real click
        from click import exceptions as click  # type: ignore[no-redef]
    try:
        rc = app(args=argv, prog_name="revwatch", standalone_mode=False)
    except click.NoArgsIsHelpError:     # the help has been shown; no command given is still a usage error
        sys.exit(2)
    except click.UsageError as e:
        cmd = e.ctx.command_path if e.ctx is not None else "revwatch"
        err.print(f"revwatch: {e.format_message()} (see `{cmd} --help`)", markup=False, highlight=False,
                  soft_wrap=True)
        sys.exit(2)
    except click.ClickException as e:
        err.print(f"revwatch: {e.format_message()}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):    # typer's vendored click has no exceptions.Abort
        _goodbye()
        sys.exit(130)
    if rc == 130:                      # typer turns Ctrl-C inside a command into Exit(130)
        _goodbye()
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":          # `python -m revwatch.cli`: run the imported module's app, which has
    from revwatch.cli import main as _main   # every command registered (this __main__ copy does not)
    _main()
