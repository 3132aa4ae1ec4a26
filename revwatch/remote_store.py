"""The store as an intake process sees it: the owner process's embedded store, reached over loopback HTTP.

chDB allows one process per data dir (revwatch/store.py), so with `server.intake_processes` (docs/http.md
"Intake processes") the processes that accept ingest cannot open the store themselves. Each one keeps its own
spool and its own writer, exactly as a single process does, and only the writer's store calls (and the few reads
an intake needs: API keys, recent event IDs) cross to the owner through `POST /internal/v1/store`:

* an insert carries its ClickHouse dedup token, so a batch re-sent after a lost reply (owner restarted, socket
  cut) is dropped by the store — the writer's exactly-once argument (collector/writer.py) is unchanged;
* an owner error comes back as its ClickHouse message, so the writer tells "not now" (retry) from "bad row"
  (quarantine) exactly as it does in one process; an owner that does not answer is "not now";
* values keep their types across the wire (datetimes, decimals, UUIDs, bytes are tagged in the JSON), so readers
  such as the key store get the same Python values as from a local store.

The route answers only a caller presenting the per-run secret the owner hands its intake processes (on a pipe,
never in the environment, on disk or in a log), from a loopback address; it accepts SELECT/SHOW/DESCRIBE/EXISTS reads
(run with `readonly=2`), inserts into the ingest tables, and the dead-letter retention delete.
"""
from __future__ import annotations

import base64
import datetime as dt
import decimal
import hmac
import ipaddress
import re
import time
import uuid
from typing import Any, Callable, Sequence

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from revwatch.api import error_response
from revwatch.store import QueryResult, Store, StoreError

OWNER_URL_ENV = "REVWATCH_OWNER_URL"
TOKEN_HEADER = "x-revwatch-owner-token"
ROUTE = "/internal/v1/store"
# What an intake process writes: its spool's tables, the quarantine, dead letters and their replays, probe samples,
# API-key rows are not among them (keys are created on the owner).
INSERT_TABLES = frozenset({"spans", "events", "event_keys", "ingest_quarantine", "dead_letters",
                           "dead_letter_replays", "samples"})
_READ = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS)\b", re.IGNORECASE)


# -- typed values on the wire ------------------------------------------------------------------------------------
def _tag(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$d": v.isoformat()}
    if isinstance(v, decimal.Decimal):
        return {"$dec": str(v)}
    if isinstance(v, uuid.UUID):
        return {"$uuid": str(v)}
    if isinstance(v, (bytes, bytearray)):
        return {"$b": base64.b64encode(v).decode()}
    if isinstance(v, (list, tuple)):
        return [_tag(x) for x in v]
    if isinstance(v, dict):
        return {"$map": [[_tag(k), _tag(x)] for k, x in v.items()]}
    return v


_UNTAG: dict[str, Callable[[str], Any]] = {
    "$dt": dt.datetime.fromisoformat, "$d": dt.date.fromisoformat, "$dec": decimal.Decimal, "$uuid": uuid.UUID,
    "$b": base64.b64decode}


def _untag(v: Any) -> Any:
    if isinstance(v, list):
        return [_untag(x) for x in v]
    if isinstance(v, dict):
        if "$map" in v:
            return {_untag(k): _untag(x) for k, x in v["$map"]}
        (tag, raw), = v.items()
        return _UNTAG[tag](raw)
    return v


def dumps(v: Any) -> bytes:
    """JSON with typed values tagged (see module docstring)."""
    return orjson.dumps(_tag(v))


def loads(data: bytes) -> Any:
    return _untag(orjson.loads(data))


# -- the intake side -------------------------------------------------------------------------------------------
class RemoteStore(Store):
    """A `Store` whose every call runs in the owner process (same database, same tables, same errors).

    Not a general remote client: DDL and migrations belong to the owner, which has applied them before starting
    its intake processes, so `migrate` here only checks that the owner answers."""

    def __init__(self, owner_url: str, token: str, database: str = "revwatch", timeout: float = 60.0):
        # Deliberately not Store.__init__: no ClickHouse client is built in this process.
        self._set_up(owner_url.rstrip("/") + ROUTE, database, None, embedded=False, read_slots=16)
        self._http = httpx.Client(timeout=timeout, headers={TOKEN_HEADER: token}, trust_env=False)

    def __repr__(self) -> str:
        return f"RemoteStore({self.dsn!r})"

    def _post(self, op: str, meta: dict, body: bytes = b"") -> Any:
        try:
            r = self._http.post(self.dsn, params={"op": op, "meta": dumps(meta).decode()}, content=body)
        except httpx.HTTPError as e:                 # "Connection" / "timed out": the writer retries, never drops
            raise StoreError(f"Connection to the store owner failed: {type(e).__name__}: {e}") from e
        if r.status_code != 200:
            try:
                msg = r.json().get("error", r.text)
            except ValueError:
                msg = r.text
            raise StoreError(str(msg)[:500] or f"store owner answered {r.status_code}")
        return loads(r.content)

    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        return self._post("command", {"sql": sql, "parameters": parameters or {}})

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> QueryResult:
        out = self._post("query", {"sql": sql, "parameters": parameters or {}})
        return QueryResult(out["columns"], [tuple(r) for r in out["rows"]])

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
               dedup_token: str | None = None) -> int:
        if not rows:
            return 0
        return int(self._post("insert", {"table": table, "columns": list(columns), "token": dedup_token},
                              dumps([list(r) for r in rows])))

    def insert_lines(self, table: str, columns: Sequence[str], payloads: list[bytes],
                     dedup_token: str | None = None) -> int:
        payloads = [p for p in payloads if p]
        if not payloads:
            return 0
        return int(self._post("insert_lines", {"table": table, "columns": list(columns), "token": dedup_token},
                              b"\n".join(payloads)))

    def migrate(self) -> list[int]:
        self.query("SELECT 1")
        return []

    def report_ingest(self, n: int, intake: int | None = None,
                      problems: Sequence[str] = ()) -> dict[int, list[str]]:
        """Tell the owner that `n` ingest requests arrived here (its read rationing counts them) and why this
        intake process would refuse ingest now (`problems`, empty when it would not); the answer is what the owner
        heard of the other intake processes: {index: problems} (revwatch.remote_store.IntakeHealth)."""
        meta: dict[str, Any] = {"n": n}
        if intake is not None:
            meta.update(intake=intake, problems=list(problems))
        out = self._post("ingest", meta)
        return {int(i): list(ps) for i, ps in (out or {}).get("problems", {}).items()}

    def close(self) -> None:
        self._http.close()


# -- the owner side --------------------------------------------------------------------------------------------
class IntakeHealth:
    """What the owner last heard from each intake process about refusing ingest (reported every 0.2 s with its
    ingest count: revwatch/intakes.py).

    Why: the intake processes share one listening socket, so a load balancer's `/readyz` on the intake port is
    answered by whichever process the kernel hands the connection — and a process whose spool is full refuses
    the share of ingest that reaches it while another says "ready". Each intake process therefore answers
    `/readyz` with its own problems and those of the others, named (revwatch.server.readiness): not ready while
    any request could be refused. A process that stopped reporting (exited; the supervisor restarts it) takes no
    connections, so its last report is forgotten after `fresh` seconds."""

    def __init__(self, fresh: float = 2.0, clock: Callable[[], float] | None = None):
        self.fresh, self.clock = fresh, clock or time.monotonic
        self._heard: dict[int, tuple[float, list[str]]] = {}

    def note(self, intake: int, problems: list[str]) -> None:
        self._heard[intake] = (self.clock(), problems)

    def problems(self, but: int | None = None) -> dict[int, list[str]]:
        """{intake index: problems} of the processes heard from within `fresh` seconds that have any, except `but`."""
        now = self.clock()
        return {i: ps for i, (at, ps) in sorted(self._heard.items())
                if i != but and ps and now - at <= self.fresh}


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_command(sql: str, database: str) -> bool:
    """The only statement an intake process runs: the dead-letter retention delete (collector/deadletters.py)."""
    return re.match(rf"^\s*DELETE FROM {re.escape(database)}\.dead_letters\b", sql) is not None


def owner_router(store: Store, token: str, on_rows: Callable[[str, int], None] | None = None,
                 on_ingest: Callable[[int], None] | None = None, health: IntakeHealth | None = None,
                 on_lines: Callable[[str, bytes, bool], None] | None = None) -> APIRouter:
    """`POST /internal/v1/store`: the owner runs an intake process's store call (module docstring). `on_rows(table,
    n)` is told of every forwarded insert that succeeded (the owner's `revwatch_store_writes_total` then counts the
    rows its intake processes stored too); `on_ingest(n)` of the ingest requests an intake process reports
    (`op=ingest`, on the event loop: the owner's reads yield to its intake processes' ingest as to its own); the
    same report's problems go to `health`, and its answer carries the other intake processes' problems.
    `on_lines(table, body, stored)` sees every forwarded `insert_lines` body, before (False) and after it was
    stored (True): the owner's journey tier learns what its intake processes store (revwatch/journeys/tier.py)."""
    router = APIRouter(include_in_schema=False)

    @router.post(ROUTE)
    async def store_call(request: Request, op: str, meta: str):
        given = request.headers.get(TOKEN_HEADER, "")
        if not (token and hmac.compare_digest(given.encode(), token.encode()) and _loopback(request)):
            return error_response(403, "not an intake process of this server", TOKEN_HEADER)
        body = await request.body()
        if op == "ingest":
            try:
                m = loads(meta.encode())
                n = int(m["n"])
                intake = None if m.get("intake") is None else int(m["intake"])
                problems = m.get("problems", [])
                if not isinstance(problems, list):       # a string would be kept as its characters
                    raise TypeError("problems must be a list")
                problems = [str(p) for p in problems]
            # ArithmeticError: a tagged decimal that is not one ({"$dec": "x"}) or is no integer (Infinity)
            except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError):
                return error_response(400, "meta must carry n, a count of requests (and intake, problems)", "meta")
            if on_ingest is not None and n > 0:
                on_ingest(n)
            if health is None:
                return Response(dumps(None), media_type="application/json")
            if intake is not None:
                health.note(intake, problems)
            others = {str(i): ps for i, ps in health.problems(but=intake).items()}
            return Response(dumps({"problems": others}), media_type="application/json")
        # on a worker thread: a slow insert never blocks the event loop
        return await run_in_threadpool(_run, op, meta, body)

    def _run(op: str, meta: str, body: bytes) -> Response:
        try:
            m = loads(meta.encode())
        except (ValueError, KeyError, TypeError, ArithmeticError):     # ArithmeticError: {"$dec": "x"}
            return error_response(400, "meta is not valid JSON", "meta")
        if not isinstance(m, dict):
            return error_response(400, "meta must be a JSON object", "meta")
        try:
            return _call_store(op, m, body)
        except StoreError as e:
            return error_response(503, str(e))
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
            # a field missing or of the wrong type: the intake process's request, not the store, is at fault
            return error_response(400, f"meta or body does not fit op {op!r}: {type(e).__name__}", "meta")

    def _call_store(op: str, m: dict, body: bytes) -> Response:
        if op == "query":
            if not _READ.match(m.get("sql", "")):
                return error_response(400, "only reads are forwarded", "sql")
            r = store.query(m["sql"], m.get("parameters") or None, {"readonly": 2})
            out: Any = {"columns": r.columns, "rows": [list(x) for x in r.rows]}
        elif op in ("insert", "insert_lines"):
            if m.get("table") not in INSERT_TABLES:
                return error_response(400, f"table {m.get('table')!r} is not written by intake processes", "table")
            if op == "insert":
                out = store.insert(m["table"], loads(body), m["columns"], m.get("token"))
            else:
                if on_lines is not None:
                    on_lines(m["table"], body, False)
                out = store.insert_lines(m["table"], m["columns"], [body], m.get("token"))
                if on_lines is not None:
                    on_lines(m["table"], body, True)
            if on_rows is not None:
                on_rows(m["table"], out)
        elif op == "command":
            if not _allowed_command(m.get("sql", ""), store.database):
                return error_response(400, "statement not forwarded", "sql")
            store.command(m["sql"], m.get("parameters") or None)
            out = None
        else:
            return error_response(400, f"unknown op {op!r}", "op")
        return Response(dumps(out), media_type="application/json")

    return router
