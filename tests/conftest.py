"""Shared fixtures. chDB allows one embedded data dir per process, so every test of this process uses one
temporary data dir and isolates itself by database name; tests that need their own data dir use subprocesses."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import uvicorn
import yaml
from fastapi.testclient import TestClient

from revwatch.config import Config
from revwatch.server import create_app
from revwatch.store import open_store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb')}/data"


@pytest.fixture
def database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(chdb_dsn, database):
    return open_store(chdb_dsn, database)


@pytest.fixture
def make_config(chdb_dsn, tmp_path, database):
    """Build a Config from YAML text (or a dict) on the session's embedded store, own database and spool."""
    def build(extra: str | dict = "", **overrides) -> Config:
        raw = yaml.safe_load(extra) if isinstance(extra, str) else dict(extra)
        raw = raw or {}
        raw.setdefault("store", {}).update(dsn=chdb_dsn, database=overrides.pop("database", database))
        raw.setdefault("spool", {}).setdefault("dir", str(tmp_path / "spool"))
        raw["spool"].setdefault("flush_interval", "50ms")
        raw.setdefault("evaluator", {}).setdefault("enabled", False)
        raw.setdefault("data_dir", str(tmp_path))
        return Config.model_validate(raw)
    return build


class Api:
    """A TestClient with keys of every scope, and helpers."""

    def __init__(self, client: TestClient, keys: dict[str, str]):
        self.client, self.keys = client, keys
        self.ctx = client.app.state.ctx

    def auth(self, scope: str) -> dict:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def get(self, path, scope="read", **kw):
        return self.client.get(path, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def post(self, path, scope="ingest", **kw):
        return self.client.post(path, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def drain(self, timeout: float = 30.0) -> None:
        assert self.ctx.writer.wait_drained(timeout), "writer did not drain the spool"


@pytest.fixture
def api_factory(make_config):
    stack = contextlib.ExitStack()

    def build(extra: str | dict = "", **overrides) -> Api:
        cfg = make_config(extra, **overrides)
        app = create_app(cfg)
        client = stack.enter_context(TestClient(app))
        ks = app.state.ctx.keys
        keys = {s: ks.create(s)[0] for s in ("ingest", "read", "admin")}
        return Api(client, keys)

    yield build
    stack.close()


@pytest.fixture
def api(api_factory) -> Api:
    return api_factory()


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
