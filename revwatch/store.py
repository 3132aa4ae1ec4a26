"""The only module that creates ClickHouse clients; applies the schema migrations of `revwatch.schema`.

Embedded by default (`chdb:///path`, chDB through clickhouse-connect's client API); any `http(s)://` DSN reaches
a real ClickHouse server or cluster. chDB allows one data dir per process and one process per data dir, so the
embedded engine is opened once per process (`open_store` caches clients by DSN) and shared by the request
handlers, the writer and the scheduler; `StoreLocked` tells a CLI command that a server holds the store.
"""
from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import fcntl
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import clickhouse_connect

from revwatch import schema
from revwatch.priority import READ_THREADS
from revwatch.read_slots import INTERACTIVE, ReadSlots

log = logging.getLogger("revwatch.store")


class StoreError(Exception):
    """The store could not do what was asked (unreachable, bad query, …)."""


class StoreBusy(StoreError):
    """A read would wait longer than the store's read wait for a read slot (answered 503 + Retry-After)."""


class StoreLocked(StoreError):
    """The embedded data dir is held by another process (normally `revwatch serve`)."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]

    def dicts(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, r)) for r in self.rows]

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self.rows[0][0] if self.rows else None


# Per DSN: the writer client and the queue of reader clients (shared by every Store on that DSN).
_clients: dict[str, tuple[Any, queue.SimpleQueue]] = {}
# chDB runs the queries of one connection one after the other, but separate connections to the same engine run
# side by side (measured: a 5 ms `SELECT 1` on a second connection during a 0.6 s scan on the first; 0.2–0.9 s on
# the same one). So the embedded store reads through its own connections, never the writer's: a journey lookup no
# longer waits behind an insert with its materialised views or an evaluator scan. Three: the two cores here, plus
# one for a read that waits on I/O; every read still takes a read slot first (revwatch/read_slots.py).
EMBEDDED_READ_CONNECTIONS = 3
HTTP_READ_SLOTS = 16
_PINGER = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="revwatch-ping")
_clients_lock = threading.Lock()


def held_by_other_process(data_dir: str | Path) -> bool:
    """Whether another process holds an embedded data dir (ClickHouse flocks `<dir>/status` while open)."""
    status = Path(data_dir) / "status"
    if not status.exists():
        return False
    with open(status, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


def _build_client(dsn: str):
    """Create the clickhouse-connect client for a DSN (embedded chDB or HTTP)."""
    if dsn.startswith("chdb://"):
        data_dir = dsn[len("chdb://"):]
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        if held_by_other_process(data_dir):
            raise StoreLocked(f"the embedded store {data_dir} is held by another process "
                              f"(is `revwatch serve` running?)")
        try:
            return clickhouse_connect.get_client(dsn=dsn)
        except Exception as e:  # chDB raises ProgrammingError with ClickHouse's text inside
            text = str(e)
            if "Cannot lock file" in text:
                raise StoreLocked(f"the embedded store {dsn[7:]} is held by another process "
                                  f"(is `revwatch serve` running?)") from None
            if "already initialized" in text:
                raise StoreError("this process already opened another embedded data dir "
                                 "(chDB allows one per process)") from None
            raise StoreError(f"cannot open the embedded store {dsn[7:]}: {text.splitlines()[0][:200]}") from None
    u = urlparse(dsn)
    driver_log = logging.getLogger("clickhouse_connect")
    level = driver_log.level
    driver_log.setLevel(logging.ERROR)      # its "Unexpected Http Driver Exception" repeats what we raise below
    try:
        return clickhouse_connect.get_client(host=u.hostname or "localhost", port=u.port or 8123,
                                             username=u.username or "default", password=u.password or "",
                                             secure=u.scheme == "https", connect_timeout=5,
                                             send_receive_timeout=60)
    except Exception as e:
        raise StoreError(f"cannot reach ClickHouse at {u.hostname}:{u.port or 8123} ({_root_cause(e)})") from None
    finally:
        driver_log.setLevel(level)


def _reader_clients(dsn: str, writer) -> queue.SimpleQueue:
    """The clients reads take turns on: for chDB, connections of their own to the engine the writer opened (no
    lock check: this process holds the data dir now); for a server, the writer's client, which is thread-safe."""
    pool: queue.SimpleQueue = queue.SimpleQueue()
    if not dsn.startswith("chdb://"):
        for _ in range(HTTP_READ_SLOTS):
            pool.put(writer)
        return pool
    for _ in range(EMBEDDED_READ_CONNECTIONS):
        try:
            pool.put(clickhouse_connect.get_client(dsn=dsn))
        except Exception as e:   # never expected; reading through the writer's connection still works
            log.warning("could not open a read connection to the embedded store (%s); reads share the writer's",
                        str(e).splitlines()[0][:200] if str(e) else repr(e))
            pool.put(writer)
    return pool


def _root_cause(e: BaseException) -> str:
    """The innermost cause of a driver error, in a few words ("connection refused"), never cut mid-word: the
    driver wraps an OSError in several layers of URL-laden messages."""
    seen = e
    while (inner := seen.__cause__ or seen.__context__) is not None:
        seen = inner
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
    text = str(seen).splitlines()[0] if str(seen) else type(seen).__name__
    text = text.split("(Caused by")[0].strip()
    return text if len(text) <= 160 else text[:160].rsplit(" ", 1)[0] + " …"


def _redact(dsn: str) -> str:
    u = urlparse(dsn)
    if u.password:
        return dsn.replace(f":{u.password}@", ":***@")
    return dsn


def _dedup_settings(token: str | None) -> dict[str, Any]:
    """Insert settings that make a retried insert with the same token a no-op, materialized views included."""
    if not token:
        return {}
    return {"insert_deduplicate": 1, "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1}


class Store:
    """A database inside one ClickHouse engine, with helpers that all other modules use.

    Thread-safe: writes and DDL go through one client, serialised by a lock; reads take a read slot and then one
    of the reader clients (embedded: connections of their own, so they run beside each other and beside a write —
    `EMBEDDED_READ_CONNECTIONS`). HTTP clients are used as they are.
    """

    def __init__(self, dsn: str, database: str = "revwatch", cluster: str | None = None):
        embedded = dsn.startswith("chdb://")
        with _clients_lock:
            clients = _clients.get(dsn)
            if clients is None:
                writer = _build_client(dsn)
                clients = _clients[dsn] = (writer, _reader_clients(dsn, writer))
        self._client, self._readers = clients
        self._lock = threading.RLock() if embedded else None
        self._set_up(dsn, database, cluster, embedded,
                     EMBEDDED_READ_CONNECTIONS if embedded else HTTP_READ_SLOTS)

    def _set_up(self, dsn: str, database: str, cluster: str | None, embedded: bool, read_slots: int) -> None:
        """What every store has, whatever carries its calls (a subclass that builds no ClickHouse client, such as
        revwatch.remote_store.RemoteStore, calls this instead of `__init__`)."""
        self.dsn, self.database, self.cluster, self.embedded = dsn, database, cluster, embedded
        # Reads are admitted through a bounded number of slots: a read that cannot get one within `read_wait`
        # seconds fails fast with StoreBusy (503 + Retry-After) instead of piling up threads behind a slow store.
        # Ingest never reads the store, so reads can never hold it (issue #10). One slot per reader client (one
        # query at a time per chDB connection), 16 on a server. Reads made for an HTTP request go before background
        # queries (revwatch/read_slots.py).
        self.read_slots = ReadSlots(read_slots)
        self.read_wait = 10.0
        # `max_threads` for background queries and statements (evaluator passes, anomaly scans, upkeep) right now,
        # or None for the engine's default. The server sets it to one thread while ingest is busy
        # (revwatch.priority.IngestFirst.busy_seen): a pass that takes both cores for a few hundred milliseconds
        # stalls every ingest request for that long; on one core it takes longer and ingest keeps the other.
        self.background_threads: Callable[[], int | None] = lambda: None
        # told (table, columns, rows) after each row insert succeeds: rows tools and tests insert directly reach
        # the journey tier as the collector's reach it (collector/pipeline.py); the collector's own writer inserts
        # encoded lines (`insert_lines`), which the tier saw when they were acknowledged
        self.row_listeners: list[Callable[[str, Sequence[str], Sequence[Sequence[Any]]], None]] = []
        self._ping_future: cf.Future | None = None
        self._ping_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({_redact(self.dsn)!r}, database={self.database!r})"

    # -- low level ---------------------------------------------------------------------------------------
    def _call(self, method: str, *args, write: bool = False, **kwargs):
        try:
            if not write:                              # reads run concurrently, each on its own client
                if not self.read_slots.acquire(timeout=self.read_wait):
                    raise StoreBusy(f"the store is busy: no read slot within {self.read_wait:g}s")
                client = self._readers.get()           # a slot guarantees a free client
                try:
                    return getattr(client, method)(*args, **kwargs)
                finally:
                    self._readers.put(client)
                    self.read_slots.release()
            if self._lock is None:
                return getattr(self._client, method)(*args, **kwargs)
            with self._lock:
                return getattr(self._client, method)(*args, **kwargs)
        except StoreError:
            raise
        except Exception as e:
            raise StoreError(str(e).strip().splitlines()[0][:500] if str(e).strip() else repr(e)) from e

    def _threads(self, settings: dict | None) -> dict | None:
        """`settings` with the thread limit of this context: a read served under ingest load (READ_THREADS) or a
        background query while ingest is busy (`background_threads`) uses one core, not all of them. Embedded
        only: a server's cores are its own business."""
        if not self.embedded:
            return settings
        threads = READ_THREADS.get() or (None if INTERACTIVE.get() else self.background_threads())
        return {"max_threads": threads, **(settings or {})} if threads else settings

    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        """Run a statement that returns no rows (DDL, ALTER, INSERT … SELECT)."""
        return self._call("command", sql, parameters=parameters, settings=self._threads(settings), write=True)

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> QueryResult:
        """Run a SELECT; `{name:Type}` placeholders are bound server-side from `parameters`."""
        r = self._call("query", sql, parameters=parameters, settings=self._threads(settings))
        return QueryResult(list(r.column_names), [tuple(x) for x in r.result_rows])

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
               dedup_token: str | None = None) -> int:
        """Insert rows into `<database>.<table>`; a retried insert with the same `dedup_token` is dropped."""
        if not rows:
            return 0
        settings = _dedup_settings(dedup_token)
        self._call("insert", f"{self.database}.{table}", rows, column_names=list(columns),
                   settings=settings, write=True)
        for listener in self.row_listeners:
            listener(table, columns, rows)
        return len(rows)

    def insert_lines(self, table: str, columns: Sequence[str], payloads: list[bytes],
                     dedup_token: str | None = None) -> int:
        """Insert JSONCompactEachRow payloads (parsed by ClickHouse, not Python); returns the number of rows."""
        payloads = [p for p in payloads if p]
        if not payloads:
            return 0
        body = b"\n".join(payloads)
        settings = _dedup_settings(dedup_token)
        self._call("raw_insert", f"{self.database}.{table}", list(columns), insert_block=body,
                   settings=settings, fmt="JSONCompactEachRow", write=True)
        return body.count(b"\n") + 1

    def ping(self, timeout: float | None = None) -> bool | None:
        """True when the store answers a trivial query, False when it fails; with `timeout`, None when it has not
        answered within `timeout` seconds (busy: one probe at a time runs in the background, never piling up)."""
        if timeout is None:
            return self._ping_now()
        with self._ping_lock:
            fut = self._ping_future
            if fut is None or fut.done():
                fut = self._ping_future = _PINGER.submit(self._ping_now)
        try:
            return fut.result(timeout)
        except cf.TimeoutError:
            return None

    def _ping_now(self) -> bool | None:
        try:
            return self.query("SELECT 1").scalar() == 1
        except StoreBusy:
            return None
        except StoreError:
            return False

    # -- schema --------------------------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Create the database and apply pending migrations in order; returns the versions applied now."""
        on_cluster = f" ON CLUSTER {self.cluster}" if self.cluster else ""
        self.command(f"CREATE DATABASE IF NOT EXISTS {self.database}{on_cluster}")
        self.command(schema.render("""CREATE TABLE IF NOT EXISTS {db}.schema_migrations {on_cluster} (
            Version UInt32, Description String, AppliedAt DateTime64(3, 'UTC')) ENGINE = {engine}
            ORDER BY Version""", self.database, self.cluster))
        done = {r[0] for r in self.query(f"SELECT Version FROM {self.database}.schema_migrations").rows}
        applied = []
        for m in schema.MIGRATIONS:
            if m.version in done:
                continue
            for stmt in m.statements:
                self.command(schema.render(stmt, self.database, self.cluster))
            if self.cluster:
                for table in self._tables_created_by(m):
                    self.command(schema.distributed_statement(table, self.database, self.cluster))
            self.insert("schema_migrations", [(m.version, m.description, dt.datetime.now(dt.timezone.utc))],
                        ["Version", "Description", "AppliedAt"])
            applied.append(m.version)
            log.info("applied migration %d: %s", m.version, m.description)
        return applied

    @staticmethod
    def _tables_created_by(m: schema.Migration) -> list[str]:
        names = []
        for stmt in m.statements:
            head = stmt.strip().split("(", 1)[0]
            if head.startswith("CREATE TABLE"):
                names.append(head.split("{db}.")[1].split("{local}")[0])
        return names

    def schema_versions(self) -> list[int]:
        """Versions recorded in schema_migrations, ascending."""
        return sorted(r[0] for r in self.query(f"SELECT Version FROM {self.database}.schema_migrations").rows)

    # -- small key/value state (cursors, evaluator watermarks) ---------------------------------------------
    def get_state(self, key: str) -> str | None:
        """Read a value written by `put_state`."""
        return self.query(f"SELECT argMax(Value, Version) FROM {self.database}.kv_state WHERE Key = {{k:String}} "
                          f"GROUP BY Key", {"k": key}).scalar()

    def put_state(self, key: str, value: str) -> None:
        """Durably record a small piece of state (latest write wins)."""
        self.insert("kv_state", [(key, value, time.time_ns())], ["Key", "Value", "Version"])

    def table(self, name: str) -> str:
        """The qualified name of a revwatch table."""
        return f"{self.database}.{name}"


def open_store(dsn: str, database: str = "revwatch", cluster: str | None = None, migrate: bool = True) -> Store:
    """Open (and by default migrate) the store at `dsn`."""
    store = Store(dsn, database, cluster)
    if migrate:
        store.migrate()
    return store


def store_from_config(cfg, migrate: bool = True) -> Store:
    """Open the store a `revwatch.config.Config` names."""
    return open_store(cfg.store_dsn, cfg.store.database, cfg.store.cluster, migrate=migrate)
