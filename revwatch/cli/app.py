"""The root of the `revwatch` command line (typer): the app, the shared options and helpers, and `main`.

Bad usage or config: one line on stderr, exit 2. The command groups live in their own modules of this package
(serve, init, keys, slo, trace, journeys, anomaly, probes, sim, dashboards); they import from here, and only the
package's `__init__` imports them, so there is no import cycle. Where a command reads or changes the store it asks a
`Target` (revwatch/cli/target.py): the store itself, or the running server that holds it.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console

from revwatch.config import DEFAULT_CONFIG_FILE, Config, ConfigError, config_path, load_config
from revwatch.units import parse_instant

app = typer.Typer(help="revwatch: business-journey SLOs and integration observability for subscription revenue.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 170)

ConfigOpt = typer.Option(None, "--config", "-c",
                         help="config YAML (default: $REVWATCH_CONFIG, else ./revwatch.yaml; `revwatch init` "
                              "writes one)")
JsonOpt = typer.Option(False, "--json", help="stable JSON output for scripts")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line to stderr and exit."""
    err.print(f"revwatch: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_cli_config(path: Optional[Path], required: bool = True) -> Config:
    """The validated config — SLO specs (OpenSLO and Sloth files too) and probe settings included — or exit 2 with
    one line naming the file, the key path and the problem.

    `required`: a command that reads or writes the store, or names SLOs, never guesses — without a config file (and
    without `$REVWATCH_DATA_DIR` / `$REVWATCH_STORE_DSN` saying where the store is) it exits 2 naming what it
    looked for and `revwatch init`, instead of running on built-in defaults and creating a stray `./.revwatch`."""
    if required and config_path(path) is None and not (os.environ.get("REVWATCH_DATA_DIR")
                                                       or os.environ.get("REVWATCH_STORE_DSN")):
        fail(f"no config: looked for --config, $REVWATCH_CONFIG and {DEFAULT_CONFIG_FILE} in {Path.cwd()}; "
             f"create one with `{cli_path()} init` (or pass --config FILE)")
    try:
        cfg = load_config(path)
    except ConfigError as e:
        fail(str(e))
    from probes.base import ProbeConfigError
    from probes.service import check_probe_configs
    from slo.spec import SpecError, resolve
    try:
        resolve(cfg)
        check_probe_configs(cfg.probes)
    except (SpecError, ProbeConfigError) as e:
        fail(f"{cfg.source_path or '<defaults>'}: {e}")
    return cfg


def key_from_env(scope: str) -> str | None:
    """The key the CLI presents for a route of `scope`: REVWATCH_<SCOPE>_KEY, else REVWATCH_API_KEY, else an
    admin key (admin grants every scope)."""
    env = os.environ
    return env.get(f"REVWATCH_{scope.upper()}_KEY") or env.get("REVWATCH_API_KEY") or env.get("REVWATCH_ADMIN_KEY")


def at_param(at: Optional[str], option: str = "--at") -> dt.datetime | None:
    """The instant an RFC 3339 option names, None when not given; exit 2 naming `option` when malformed."""
    if at is None:
        return None
    try:
        return parse_instant(at)
    except ValueError as e:
        fail(f"{option}: {e}")


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
    except Exception as e:             # a bug, not the user's fault: still one line, the details only on request
        if os.environ.get("REVWATCH_DEBUG"):
            raise
        err.print(f"revwatch: internal error: {type(e).__name__}: {str(e)[:300]} (set REVWATCH_DEBUG=1 for the "
                  "traceback)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    if rc == 130:                      # typer turns Ctrl-C inside a command into Exit(130)
        _goodbye()
    sys.exit(rc if isinstance(rc, int) else 0)
