"""Intake processes: several processes accept ingest in front of the one process that owns the embedded store.

Why (issue #27, docs/http.md "Intake processes"): in one process, request decoding, the spool's group commit, the
writer and every read share one interpreter lock and one event loop, so a webhook storm slows every page and reads
must be rationed to keep ingest fast. With `server.intake_processes: N` the owner (`revwatch serve`) binds
`server.intake_port` once and starts N intake processes that accept on that one socket (the kernel hands each new
connection to a process waiting in accept). Each intake process is a whole collector — authentication, decoding,
dedup memory, its own durable spool under `<spool dir>/intake-<i>`, its own writer — whose store calls go to the
owner (revwatch/remote_store.py). The owner keeps serving everything on `server.port` (reads, UI, /metrics, and
ingest too) with no ingest traffic of its own to yield to.

Invariants:
* acknowledged = in an intake's spool (fsynced), as in one process; the spool is drained into the owner's store
  with dedup tokens, so a crash of either side loses nothing and stores nothing twice;
* one process per spool directory (a lock file), so a restarted intake process takes over its predecessor's spool;
* the supervisor restarts an intake process that exits (backoff 1 s doubling to 30 s), and an intake process whose
  owner has gone exits by itself (its spool waits on disk for the next owner's intake process of the same index).

Limits: each intake process remembers the event IDs it accepted itself, so a re-delivery that lands on another
intake process is answered "accepted" rather than "duplicate" (it is still stored once: readers deduplicate, as
for any re-send past the dedup memory), and a conflicting re-send is reported only by the process that saw both.
"""
from __future__ import annotations

import fcntl
import logging
import os
import pickle
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from revwatch.config import Config

log = logging.getLogger("revwatch.intakes")

FD_ENV = "REVWATCH_INTAKE_FD"
OWNER_PID_ENV = "REVWATCH_OWNER_PID"    # not os.getppid() at start: the owner may be gone before this process asks


def new_token() -> str:
    """The per-run secret an intake process presents to the owner's store route."""
    return secrets.token_urlsafe(32)


def intake_spool_dir(cfg: Config, index: int) -> Path:
    return cfg.spool_dir / f"intake-{index}"


class IntakeSupervisor:
    """Binds the intake port, starts the intake processes and keeps them running (module docstring)."""

    def __init__(self, cfg: Config, owner_url: str, token: str, restart_max: float = 30.0):
        self.cfg, self.owner_url, self.token = cfg, owner_url, token
        self.count = cfg.server.intake_processes
        self.port = cfg.server.intake_port or cfg.server.port + 1
        self.restart_max = restart_max
        self.sock: socket.socket | None = None
        self.procs: list[subprocess.Popen | None] = [None] * self.count
        self._backoff = [1.0] * self.count
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.cfg.server.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.cfg.server.host, self.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        self.sock = sock
        for i in range(self.count):
            self._spawn(i)
        self._thread = threading.Thread(target=self._watch, name="revwatch-intakes", daemon=True)
        self._thread.start()
        log.info("%d intake processes accept ingest on %s:%d", self.count, self.cfg.server.host, self.port)

    def _spawn(self, index: int) -> None:
        assert self.sock is not None
        env = {**os.environ, FD_ENV: str(self.sock.fileno()), OWNER_PID_ENV: str(os.getpid())}
        from revwatch.remote_store import OWNER_URL_ENV
        env[OWNER_URL_ENV] = self.owner_url
        proc = subprocess.Popen([sys.executable, "-m", "revwatch.intakes", str(index)], env=env,
                                stdin=subprocess.PIPE, pass_fds=(self.sock.fileno(),))
        assert proc.stdin is not None
        # the owner's config as it runs (CLI overrides included) and the secret: on a pipe, never in the environment
        proc.stdin.write(pickle.dumps((self.cfg, self.token)))
        proc.stdin.close()
        self.procs[index] = proc

    def _watch(self) -> None:
        due: list[float | None] = [None] * self.count       # when an exited process is started again
        started = [time.monotonic()] * self.count
        while not self._stop.wait(0.5):
            now = time.monotonic()
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is None:
                    if now - started[i] > 60:
                        self._backoff[i] = 1.0           # ran a minute: a later failure starts from 1 s again
                    continue
                if due[i] is None:
                    log.warning("intake process %d exited (code %s); restarting in %.0f s", i,
                                proc.returncode if proc else None, self._backoff[i])
                    due[i] = now + self._backoff[i]
                elif now >= (due[i] or 0.0) and not self._stop.is_set():
                    self._spawn(i)
                    self._backoff[i] = min(self.restart_max, self._backoff[i] * 2)
                    due[i], started[i] = None, now

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.sock is not None:
            self.sock.close()


def _lock_spool(directory: Path) -> object:
    """Hold `<spool>/.lock` for this process's life: one process per spool directory."""
    directory.mkdir(parents=True, exist_ok=True)
    f = open(directory / ".intake.lock", "a+")
    fcntl.flock(f, fcntl.LOCK_EX)                    # waits for a predecessor that is still exiting
    return f


def _exit_with_owner(owner_pid: int) -> None:
    """End this process at once when its owner has gone (reparented). No drain is attempted — there is no store
    to drain into — and none is needed: what was acknowledged is fsynced in the spool, which the next owner's
    intake process of the same index takes over (the spool is built for kill -9: collector/spool.py)."""
    while os.getppid() == owner_pid:
        time.sleep(0.5)
    log.warning("the store owner (pid %d) has gone: this intake process exits; its spool is kept", owner_pid)
    os._exit(3)


def _report_ingest(ctx, store, index: int, every: float = 0.2, stop: threading.Event | None = None) -> None:
    """Every `every` seconds, tell the owner how many ingest requests this process took since the last report, so
    the owner's reads yield to a storm here as to one of its own (revwatch/priority.py), and why this process would
    refuse ingest now; keep what the owner answers about the other intake processes for this process's `/readyz`
    (revwatch.remote_store.IntakeHealth). A report that fails is added to the next; the others' problems are then
    kept until the owner answers again (it is restarting or gone, and this process's readiness says so itself)."""
    from revwatch.server import ingest_problems
    from revwatch.store import StoreError
    gate = ctx.priority
    stop = stop or threading.Event()
    sent = 0
    while not stop.wait(every):
        n = gate.noted - sent
        try:
            ctx.peer_problems = store.report_ingest(max(n, 0), index, ingest_problems(ctx))
            sent += max(n, 0)
        except StoreError:
            pass
        except Exception:       # never let the reports stop for good: the owner's rationing and readiness need them
            log.exception("intake process %d: the report to the owner failed; retrying", index)


def _wait_for_owner(store, limit: float = 120.0) -> None:
    """The owner starts its intake processes before it listens: wait (bounded) until it answers."""
    from revwatch.store import StoreError
    deadline = time.monotonic() + limit
    while True:
        try:
            store.query("SELECT 1")
            return
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> None:
    """An intake process (started by `IntakeSupervisor`, never by hand): argv[1] is its index; the config and the
    owner's secret come pickled on stdin from the owner; the listening socket is inherited ($REVWATCH_INTAKE_FD)."""
    threading.Thread(target=_exit_with_owner, args=(int(os.environ[OWNER_PID_ENV]),), daemon=True).start()
    import uvicorn

    from revwatch.logs import setup_logging
    from revwatch.remote_store import OWNER_URL_ENV, RemoteStore
    from revwatch.server import create_app, keep_heap_pages, quiet_garbage_collector
    index = int(sys.argv[1])
    import faulthandler
    faulthandler.register(signal.SIGUSR1, all_threads=True)     # `kill -USR1 <pid>`: where each thread is
    cfg, token = pickle.loads(sys.stdin.buffer.read())
    setup_logging(False, "text")
    owner_url = os.environ[OWNER_URL_ENV]
    sock = socket.socket(fileno=int(os.environ[FD_ENV]))
    cfg = cfg.model_copy(deep=True)
    cfg.server.role = "intake"
    cfg.spool.dir = str(intake_spool_dir(cfg, index))
    lock = _lock_spool(Path(cfg.spool.dir))
    store = RemoteStore(owner_url, token, cfg.store.database)
    _wait_for_owner(store)
    app = create_app(cfg, store=store)
    threading.Thread(target=_report_ingest, args=(app.state.ctx, store, index), name="revwatch-ingest-report",
                     daemon=True).start()
    quiet_garbage_collector()
    keep_heap_pages()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False,
                                           lifespan="on"))
    server.run(sockets=[sock])
    del lock


if __name__ == "__main__":
    main()
