"""Intake processes in front of the store owner (revwatch/intakes.py, docs/http.md "Intake processes"): every
acknowledged event stored exactly once through kills of an intake process and of the owner; the owner's store
route answers only its own intake processes; values keep their types across it."""
import datetime as dt
import decimal
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from revwatch.config import Config
from revwatch.remote_store import ROUTE, TOKEN_HEADER, dumps, loads
from revwatch.server import create_app
from tests.support.servers import free_port, revwatch_cmd, start_serve
from tests.support.waits import until

CONFIG = """\
data_dir: {tmp}
server: {{port: {port}, intake_processes: 2, intake_port: {intake}}}
spool: {{flush_interval: 200ms}}
evaluator: {{enabled: false}}
"""


def events(n, prefix):
    return [{"event_id": f"{prefix}{i}", "type": "payment.settled", "correlation_id": f"{prefix}c{i}",
             "occurred_at": "2026-11-23T10:00:00Z", "source": "test", "amount": "10.50", "currency": "EUR"}
            for i in range(n)]


def intake_pids(owner: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(owner), "-f", "revwatch.intakes"], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:            # a zombie has exited
        return f.read().split(")")[-1].split()[0] != "Z"


def answers(url: str) -> bool:
    """200 from `url` (an intake process still starting holds the connection in the socket's backlog)."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def stored(tmp) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from revwatch.store import open_store
        s = open_store("chdb://{tmp}/data", "revwatch")
        print(s.query("SELECT count(), uniqExact(EventId) FROM revwatch.events").rows[0])
    """)], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr


def test_typed_values_cross_the_wire_unchanged():
    row = [dt.datetime(2026, 12, 6, 23, 1, 2, 345000, tzinfo=dt.timezone.utc), dt.date(2026, 12, 6),
           decimal.Decimal("129.005"), uuid.UUID(int=7), b"\x00\xff", {"k": [1, "x"]}, None, 1.5, "s"]
    assert loads(dumps(row)) == row


def test_store_route_answers_only_its_intake_processes(make_config):
    app = create_app(make_config({"server": {"intake_processes": 1}}), start_background=False)
    secret = _token_of(app)
    meta = dumps({"sql": "SELECT 1", "parameters": {}}).decode()
    with TestClient(app, client=("127.0.0.1", 5000)) as local, TestClient(app, client=("10.0.0.9", 5000)) as remote:
        r = local.post(ROUTE, params={"op": "query", "meta": meta}, headers={TOKEN_HEADER: "wrong"})
        assert r.status_code == 403 and r.json()["field"] == TOKEN_HEADER
        r = remote.post(ROUTE, params={"op": "query", "meta": meta}, headers={TOKEN_HEADER: secret})
        assert r.status_code == 403                        # the right secret from off the machine: refused
        ok = local.post(ROUTE, params={"op": "query", "meta": meta}, headers={TOKEN_HEADER: secret})
        assert ok.status_code == 200 and loads(ok.content) == {"columns": ["1"], "rows": [[1]]}
        drop = dumps({"sql": "DROP TABLE revwatch.events", "parameters": {}}).decode()
        for op in ("query", "command"):
            r = local.post(ROUTE, params={"op": op, "meta": drop}, headers={TOKEN_HEADER: secret})
            assert r.status_code == 400 and r.json()["field"] == "sql"
        keys = dumps({"table": "api_keys", "columns": ["KeyId"], "token": None}).decode()
        r = local.post(ROUTE, params={"op": "insert", "meta": keys}, headers={TOKEN_HEADER: secret},
                       content=dumps([["k"]]))
        assert r.status_code == 400 and r.json()["field"] == "table"
        r = local.post(ROUTE, params={"op": "query", "meta": "{"}, headers={TOKEN_HEADER: secret})
        assert r.status_code == 400 and r.json()["field"] == "meta"
        # an intake process's ingest counts for the owner's read rationing as the owner's own ingest would
        gate = app.state.ctx.priority
        before = gate.noted
        r = local.post(ROUTE, params={"op": "ingest", "meta": dumps({"n": 120}).decode()},
                       headers={TOKEN_HEADER: secret})
        assert r.status_code == 200 and gate.noted == before + 120
        r = local.post(ROUTE, params={"op": "ingest", "meta": dumps({"n": "x"}).decode()},
                       headers={TOKEN_HEADER: secret})
        assert r.status_code == 400 and r.json()["field"] == "meta" and gate.noted == before + 120
        r = remote.post(ROUTE, params={"op": "ingest", "meta": dumps({"n": 5}).decode()},
                        headers={TOKEN_HEADER: secret})
        assert r.status_code == 403 and gate.noted == before + 120


def test_a_malformed_ingest_report_is_a_400_naming_meta_never_a_500(make_config):
    """Values that survive the typed wire but are no count or index (an infinite or unparsable decimal) and
    problems that are not a list (a string would be kept as its characters, each named on other intakes' /readyz)
    are refused like any bad meta; nothing of such a report is noted."""
    app = create_app(make_config({"server": {"intake_processes": 1}}), start_background=False)
    secret = _token_of(app)
    ctx = app.state.ctx
    bad = [dumps({"n": decimal.Decimal("Infinity")}).decode(),
           dumps({"n": 1, "intake": decimal.Decimal("-Infinity")}).decode(),
           '{"$map": [["n", {"$dec": "abc"}]]}',
           dumps({"n": 1, "intake": 0, "problems": "spool full"}).decode(),
           dumps({"n": 1, "intake": 0, "problems": {"spool": "full"}}).decode()]
    with TestClient(app, client=("127.0.0.1", 5000), raise_server_exceptions=False) as local:
        before = ctx.priority.noted
        for meta in bad:
            r = local.post(ROUTE, params={"op": "ingest", "meta": meta}, headers={TOKEN_HEADER: secret})
            assert (r.status_code, r.json().get("field")) == (400, "meta"), meta
        assert ctx.priority.noted == before and ctx.intake_health.problems() == {}
        r = local.post(ROUTE, params={"op": "query", "meta": '{"$map": [["sql", {"$dec": "abc"}]]}'},
                       headers={TOKEN_HEADER: secret})
        assert (r.status_code, r.json().get("field")) == (400, "meta")
        # the other ops: a meta that is no object, a field missing, a field of the wrong type
        for op, meta, body in [("query", "[1]", b""), ("query", dumps({"sql": 5}).decode(), b""),
                               ("insert", dumps({"table": "events"}).decode(), dumps([["x"]])),
                               ("insert_lines", dumps({"table": "events", "columns": 7}).decode(), b"[1]"),
                               ("insert", dumps({"table": "events", "columns": ["EventId"]}).decode(), b"{")]:
            r = local.post(ROUTE, params={"op": op, "meta": meta}, headers={TOKEN_HEADER: secret}, content=body)
            assert (r.status_code, r.json().get("field")) == (400, "meta"), (op, meta)
        ok = dumps({"n": 2, "intake": 0, "problems": ["spool full"]}).decode()
        r = local.post(ROUTE, params={"op": "ingest", "meta": ok}, headers={TOKEN_HEADER: secret})
        assert r.status_code == 200 and ctx.intake_health.problems() == {0: ["spool full"]}
        assert ctx.priority.noted == before + 2


def test_an_intake_process_is_not_ready_while_another_one_would_refuse_ingest(make_config):
    """Two intake processes' apps (as revwatch.intakes.main builds them) reporting to a live owner: intake 1's
    spool fills for real (no writer drains it) and refuses; intake 0's /readyz then says not ready and names intake
    1's problem (a load balancer cannot tell which process takes its next request); the owner lists it without
    being unready itself. Once intake 1 stops reporting (an exited process takes no connections), intake 0 is
    ready again by itself."""
    import threading

    from revwatch.intakes import _report_ingest, intake_spool_dir
    from revwatch.remote_store import RemoteStore
    from tests.support.servers import live_server
    owner_cfg = make_config({"server": {"intake_processes": 2}})
    owner = create_app(owner_cfg, start_background=False)
    stops = [threading.Event(), threading.Event()]
    key = owner.state.ctx.keys.create("ingest", "t")[0]      # before the intake processes load the keys
    with live_server(owner) as base, TestClient(owner) as owner_client:
        clients = []
        for i in range(2):
            cfg = owner_cfg.model_copy(deep=True)
            cfg.server.role, cfg.spool.dir = "intake", str(intake_spool_dir(cfg, i))
            cfg.spool.max_bytes = 256 * 1024 if i == 1 else cfg.spool.max_bytes
            store = RemoteStore(base, _token_of(owner), cfg.store.database)
            app = create_app(cfg, store=store, start_background=False)
            threading.Thread(target=_report_ingest, args=(app.state.ctx, store, i, 0.05, stops[i]),
                             daemon=True).start()
            clients.append(TestClient(app))
        try:
            assert clients[0].get("/readyz").status_code == 200
            codes = [clients[1].post("/api/v1/events", json=events(200, f"f{k}-"),
                                     headers={"Authorization": f"Bearer {key}"}).status_code for k in range(60)]
            assert 503 in codes                              # intake 1's spool is full: it refuses for real
            until(lambda: clients[0].get("/readyz").status_code == 503, 10, "intake 0 hears of intake 1")
            r = clients[0].get("/readyz").json()
            assert r["status"] == "not ready" and "intake process 1: spool full" in r["error"]
            assert clients[1].get("/readyz").status_code == 503
            mine = owner_client.get("/readyz").json()
            assert mine["status"] == "ready" and mine["intake_processes"]["1"][0].startswith("spool full")
            stops[1].set()                                   # intake 1 exits: its last report goes stale
            until(lambda: clients[0].get("/readyz").status_code == 200, 10, "intake 0 ready again")
        finally:
            for stop in stops:
                stop.set()
            for c in clients:
                c.close()


def test_intake_reports_are_forgotten_when_stale():
    from revwatch.remote_store import IntakeHealth
    now = [100.0]
    health = IntakeHealth(fresh=2.0, clock=lambda: now[0])
    health.note(0, [])
    health.note(1, ["spool full: 9 of 10 bytes wait for the store"])
    assert health.problems() == {1: ["spool full: 9 of 10 bytes wait for the store"]}
    assert health.problems(but=1) == {}                # its own problems are not news to itself
    now[0] += 2.5
    assert health.problems() == {}


def _token_of(app) -> str:
    from revwatch.intakes import IntakeSupervisor
    sup = app.state.intake_supervisor
    assert isinstance(sup, IntakeSupervisor)
    return sup.token


def test_kills_of_an_intake_process_and_of_the_owner_lose_nothing_and_store_nothing_twice(tmp_path):
    port, intake = free_port(), free_port()
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(CONFIG.format(tmp=tmp_path, port=port, intake=intake))
    key = revwatch_cmd("keys", "create", "--scope", "ingest", "--config", str(cfg)).stdout.strip().split()[-1]
    read = revwatch_cmd("keys", "create", "--scope", "read", "--config", str(cfg)).stdout.strip().split()[-1]
    base, ingest = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{intake}"
    hdr = {"Authorization": f"Bearer {key}"}
    owner = start_serve(cfg, base, 60)
    acked = 0

    def send(k: int) -> None:
        nonlocal acked
        with httpx.Client(timeout=30) as c:               # a new connection per batch: spread over the processes
            r = c.post(ingest + "/api/v1/events", json=events(40, f"b{k}-"), headers=hdr)
        assert r.status_code == 200, r.text
        acked += r.json()["accepted"]

    try:
        until(lambda: len(intake_pids(owner.pid)) == 2 and answers(ingest + "/readyz"), 90,
              "two intake processes ready")
        r = httpx.post(ingest + "/api/v1/events", json=events(1, "x"), headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 403                         # scopes hold on the intake port too
        assert httpx.get(ingest + "/api/v1/slos", headers={"Authorization": f"Bearer {read}"}).status_code == 404
        for k in range(10):
            send(k)
        victim = intake_pids(owner.pid)[0]
        os.kill(victim, signal.SIGKILL)                    # an intake process dies: the other one keeps accepting
        for k in range(10, 20):
            send(k)
        until(lambda: len(intake_pids(owner.pid)) == 2, 30, "the killed intake process restarted")
        # The owner stops answering (SIGSTOP): intake processes still acknowledge, into their spools only …
        os.kill(owner.pid, signal.SIGSTOP)
        for k in range(20, 30):
            send(k)
        children = intake_pids(owner.pid)
        os.kill(owner.pid, signal.SIGKILL)                 # … then it dies: its intake processes exit by themselves
        owner.wait()
        until(lambda: not any(alive(p) for p in children), 30, f"orphaned intake processes {children} exit")
        owner = start_serve(cfg, base, 60)                 # the next owner's intake processes drain those spools
        until(lambda: len(intake_pids(owner.pid)) == 2, 60, "intake processes started again")
        send(30)
        rd = {"Authorization": f"Bearer {read}"}
        for k in range(31):                                # the last event of every batch, through the owner
            until(lambda k=k: httpx.get(f"{base}/api/v1/journeys/b{k}-c39", headers=rd).status_code == 200, 60,
                  f"batch {k} stored (20-29 were acknowledged while the owner was stopped)")
    finally:
        owner.terminate()
        owner.wait(60)
    assert acked == 31 * 40
    assert stored(tmp_path) == f"({acked}, {acked})"
    assert not intake_pids(owner.pid)                      # stopping the owner stops its intake processes


@pytest.mark.parametrize("bad", [{"intake_processes": -1}, {"intake_processes": 2, "intake_port": 0}])
def test_bad_intake_settings_are_refused_naming_the_field(bad):
    from pydantic import ValidationError
    with pytest.raises(ValidationError) as e:
        Config.model_validate({"server": bad})
    assert "intake_" in str(e.value)
