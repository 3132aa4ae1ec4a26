"""Real servers for tests: free loopback ports, an app served in a thread, the CLI in a subprocess."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app):
    """Run an app on a real loopback port in a thread (for real HTTP clients such as the OTel exporter)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(10)


def revwatch_cmd(*args: str, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run the installed CLI in a subprocess (its own process, so its own chDB data dir)."""
    return subprocess.run([sys.executable, "-m", "revwatch", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, **kw)


def wait_healthy(base_url: str, timeout: float = 60) -> None:
    """Wait until a server answers 200 on /healthz (a subprocess `revwatch serve` starting up)."""
    import httpx
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy server at {base_url} after {timeout:.0f}s")


def start_serve(config: Path, base_url: str, timeout: float = 60) -> subprocess.Popen:
    """`revwatch serve --config CONFIG` in a subprocess, returned once it answers /healthz at `base_url`."""
    p = subprocess.Popen([sys.executable, "-m", "revwatch", "serve", "--config", str(config)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(base_url, timeout)
    except AssertionError:
        p.kill()
        raise
    return p
