"""Shared fixtures. chDB allows one embedded data dir per process, so every test of this process uses one
temporary data dir and isolates itself by database name; tests that need their own data dir use subprocesses."""
from __future__ import annotations

import contextlib
import signal
import uuid

import pytest
import yaml
from fastapi.testclient import TestClient

from revwatch.config import Config
from revwatch.server import create_app
from revwatch.store import open_store

# Several tests press Ctrl-C on a revwatch child process (SIGINT) and expect its one-line goodbye. A test run
# started as a background job (`cmd &` in a non-interactive shell) begins with SIGINT ignored, and every child
# would inherit that and never hear the Ctrl-C (seen: the probes and demo Ctrl-C tests waiting out their timeouts).
# Children must start as a terminal starts them, so the run takes SIGINT back from "ignored".
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
