"""`revwatch serve`: run the server in the foreground."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from collector.spool import SpoolTooSmall, spool_room_problem
from revwatch.cli.app import ConfigOpt, app, err, fail, load_cli_config
from revwatch.store import StoreError


@app.command()
def serve(config: Optional[Path] = ConfigOpt, verbose: bool = typer.Option(False, "--verbose", "-v"),
          log_format: str = typer.Option("text", "--log-format", help="text | json (structured, with correlation IDs)"),
          role: Optional[str] = typer.Option(None, "--role", help="all | collector | evaluator (default: config)"),
          port: Optional[int] = typer.Option(None, "--port", min=1, max=65535,
                                             help="port to listen on (default: server.port / $REVWATCH_PORT, 8317)"),
          host: Optional[str] = typer.Option(None, "--host", help="address to listen on (default: server.host, "
                                             "127.0.0.1)")):
    """Run the server: OTLP/HTTP + events ingest, journey lookup, SLO evaluation, probes, /metrics."""
    if log_format not in ("text", "json"):
        fail("--log-format must be text or json")
    if role not in (None, "all", "collector", "evaluator"):
        fail("--role must be all, collector or evaluator")
    cfg = load_cli_config(config)
    if role:
        cfg.server.role = role  # type: ignore[assignment]
    if port is not None:
        cfg.server.port = port
    if host is not None:
        cfg.server.host = host
    problem = port_problem(cfg.server.host, cfg.server.port)
    if not problem and cfg.server.intake_processes:
        problem = port_problem(cfg.server.host, cfg.server.intake_port or cfg.server.port + 1)
    if problem:                         # before migrations and before saying "listening"
        fail(problem, 1)
    try:
        problem = spool_room_problem(cfg.spool_dir, cfg.spool.segment_bytes)
    except OSError as e:
        problem = f"spool.dir {cfg.spool_dir}: {e.strerror or e}"
    if problem:                         # a spool that cannot hold one segment would refuse every request
        fail(problem)
    from revwatch.logs import setup_logging
    setup_logging(verbose, log_format)
    from revwatch.server import serve as run
    try:
        run(cfg)
    except StoreError as e:
        fail(str(e), 1)
    except SpoolTooSmall as e:          # a configuration problem: one line, exit 2
        fail(str(e))
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
