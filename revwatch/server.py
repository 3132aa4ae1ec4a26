"""Composition root of `revwatch serve`: builds the FastAPI app from the packages' routers and services, and
runs the background work (spool writer, APScheduler jobs: SLO evaluation, probes)."""
from __future__ import annotations

import contextlib
import functools
import logging
import threading

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from alerts import history as alert_history
from alerts import receiver as alert_routes
from alerts.direct import DirectAlerts
from alerts.service import AlertService
from anomaly import routes as anomaly_routes
from anomaly.detectors import scan as anomaly_scan
from anomaly.online import MetricWatcher, WatchedSeries
from collector import routes as collector_routes
from collector.correlation import CorrelationRules
from revwatch.journeys import JourneyService
from collector import journey_routes
from collector.deadletters import DeadLetters
from collector.drift import KIND as DRIFT_KIND
from collector.drift import scan_drift
from collector.sequencing import Sequencer
from collector.pipeline import build_ingest, forwarded_lines_hook, inserted_rows_hook
from collector import source_routes
from collector.sources import ExternalMapper, SourceRegistry
from probes import odoo_webhook
from probes.odoo import OdooProbe
from probes.service import ProbeService
from revwatch.api import ApiError, AppContext, authorize, bearer_token, ctx_of, install_error_handlers, require
from revwatch.auth import SCOPES, KeyStore
from revwatch.config import Config
from revwatch.evaluator import EvaluatorLoop
from revwatch.intakes import IntakeSupervisor, new_token
from revwatch.ingest import retry_after_hint
from revwatch.metrics import Metrics
from revwatch.openapi import install_openapi
from revwatch.priority import IngestFirst, IngestFirstMiddleware
from revwatch.remote_store import IntakeHealth, owner_router
from revwatch.store import Store, StoreError, store_from_config
from slo import routes as slo_routes
from slo import policy_routes as slo_policy_routes
from slo.conditions import identities
from slo.engine import SloEngine
from slo.exposition import SloCollector
import webui

log = logging.getLogger("revwatch.server")


class KeyRequest(BaseModel):
    scope: str
    name: str = ""


def build_context(cfg: Config, store: Store | None = None) -> AppContext:
    """Open the store and create every service the app uses (nothing is started yet)."""
    store = store or store_from_config(cfg)
    metrics = Metrics()
    ctx = AppContext(config=cfg, store=store, keys=KeyStore(store), metrics=metrics,
                     priority=IngestFirst(cfg.server.reads_per_second_under_ingest,
                                          on_paced=metrics.reads_paced_seconds_total.inc,
                                          memory_rate=cfg.server.memory_reads_per_second_under_ingest))
    ctx.keys.preload()
    gate = ctx.priority
    store.background_threads = lambda: 1 if gate.busy_seen() else None      # revwatch.store.Store._threads
    ingest = build_ingest(cfg, store, metrics)
    ctx.spool, ctx.writer, ctx.intake, ctx.ingest = ingest.spool, ingest.writer, ingest.intake, ingest
    if cfg.server.role == "all" and store.embedded and cfg.server.journey_memory_mb > 0:
        # this process sees every event the embedded store receives: lookups can be answered from memory
        ctx.journey_tier = ingest.attach_journey_tier(cfg.server.journey_memory_mb * 2**20)
        store.row_listeners.append(inserted_rows_hook(ctx.journey_tier))
    ctx.correlation = CorrelationRules.from_config(cfg.correlation)
    engine = SloEngine(store, cfg)
    ctx.slo = engine
    ctx.journeys = JourneyService(store, cfg.journeys, engine.journey_thresholds(), ctx.journey_tier)
    metrics.register(SloCollector(engine))
    metrics.register(anomaly_routes.AnomalyCollector(store))
    ctx.probes = ProbeService(cfg.probes, store, ctx.intake, metrics)
    ctx.sources = SourceRegistry(cfg.sources, _probe_mappers(cfg, ctx.probes))
    ctx.deadletters = DeadLetters(store, metrics, cfg.deadletters, cfg.sources)
    ctx.sequencer = Sequencer(cfg.journeys, metrics)
    ctx.metric_watcher = MetricWatcher(store, [WatchedSeries(m.name, m.sample, dict(m.labels), m.alarm)
                                               for m in cfg.anomaly.metric_series])
    alerts_cfg = cfg.alerts if cfg.alerts.public_url else \
        cfg.alerts.model_copy(update={"public_url": cfg.server.external_url})   # links default to this server
    ctx.alerts = AlertService(store, alerts_cfg, metrics, engine, ctx.probes)
    direct_on = alerts_cfg.direct.enabled and cfg.evaluator.enabled
    if direct_on:       # an evaluator (this process or another one on the same store) pages directly: never twice
        owned = identities(engine.specs)
        ctx.alerts.superseded = lambda labels: (labels.get("alertname", ""), labels.get("slo", "")) in owned
    if cfg.server.role in ("all", "evaluator") and cfg.evaluator.enabled:
        direct = DirectAlerts(ctx.alerts, alerts_cfg.direct, metrics) if direct_on else None
        writer = ctx.writer if cfg.server.role == "all" else None      # a collector in this process: wake on data
        ctx.evaluator = EvaluatorLoop(engine, direct, cfg.evaluator.interval.total_seconds(),
                                      alerts_cfg.public_url, metrics,
                                      data_version=(lambda: writer.batches_written) if writer is not None else None,
                                      summary_interval=cfg.evaluator.summary_interval.total_seconds())
    return ctx


def _probe_mappers(cfg: Config, probes: ProbeService) -> dict[str, ExternalMapper]:
    """Odoo sources with `probe:` map with that Odoo probe's webhook rules (the poller's event ids)."""
    out: dict[str, ExternalMapper] = {}
    for name, src in cfg.sources.items():
        runner = probes.runners.get(src.probe) if src.probe else None
        if runner is not None and isinstance(runner.probe, OdooProbe):
            out[name] = functools.partial(odoo_webhook.map_webhook, runner.probe)
    return out


def drift_scan(store: Store) -> dict[str, int]:
    """Schema drift (collector.drift) stored as anomaly findings of kind `schema_drift`: listed, acknowledged and
    routed as internal alerts like the others; resolved when the shape is back."""
    from anomaly.findings import Finding, record
    found, judged = scan_drift(store)
    findings = [Finding(DRIFT_KIND, f.key, f"{f.source} {f.type}", 1.0, [f.reason],
                        {"source": f.source, "event_type": f.type, "drift": f.what, "field": f.attribute,
                         "count": str(f.count), "first_seen": f.first_seen.isoformat() if f.first_seen else "",
                         "examples": ", ".join(f.examples)}) for f in found]
    return record(store, DRIFT_KIND, findings, judged, "the shape is back to the baseline")


def _credentialed_by(ctx: AppContext):
    """Whether a request presents a valid API key or a valid UI session (checked in memory): only those take a
    read turn under ingest load (revwatch.priority), so anonymous requests cannot queue in front of readers."""
    def credentialed(scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = bearer_token(value.decode("latin-1"))
                try:
                    return token is not None and ctx.keys.verify(token) is not None
                except StoreError:                   # the key snapshot is unavailable: treat as anonymous
                    return False
            ui = getattr(ctx, "ui", None)              # set by webui.install
            if name == b"cookie" and ui is not None and ui.sessions.from_cookie_header(value) is not None:
                return True          # a cookie counts only when its signature, expiry and session id hold
        return False
    return credentialed


JOURNEY_PREFIX = "/api/v1/journeys/"


def _served_from_memory(ctx: AppContext):
    """Whether a request is answered from memory — the SLO list and one SLO from the evaluator's latest pass
    (slo/snapshot.py), as of now, or a journey lookup the tier covers (revwatch/journeys/tier.py) of a journey
    small enough to cost well under a store read (`JourneyTier.cheap`) — so it takes a memory-read turn, not a
    store-read turn, under ingest load."""
    def from_memory(scope) -> bool:
        path = scope["path"]
        tier = ctx.journey_tier
        if tier is not None and path.startswith(JOURNEY_PREFIX) and len(path) > len(JOURNEY_PREFIX):
            return tier.cheap(path[len(JOURNEY_PREFIX):])      # ASGI paths arrive decoded
        if not (path == "/api/v1/slos" or (path.startswith("/api/v1/slos/") and path.count("/") == 4)):
            return False
        if b"at=" in scope.get("query_string", b""):
            return False
        latest = ctx.slo.snapshot.current
        return latest is not None and latest.from_evaluator
    return from_memory


def create_app(cfg: Config, store: Store | None = None, start_background: bool = True) -> FastAPI:
    """The revwatch FastAPI app; background work starts with the app's lifespan when `start_background`."""
    ctx = build_context(cfg, store)
    intake_only = cfg.server.role == "intake"       # an intake process (revwatch/intakes.py): ingest routes only
    collects = cfg.server.role in ("all", "collector", "intake")
    evaluates = cfg.server.role in ("all", "evaluator")
    supervisor: IntakeSupervisor | None = None
    if cfg.server.intake_processes and cfg.server.role in ("all", "collector"):
        supervisor = IntakeSupervisor(cfg, cfg.server.local_url(), new_token())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler = None
        owner = start_background and not ctx.background_running
        if owner:           # a second server on the same app (tests) must not start a second writer
            ctx.background_running = True
            if collects:
                ctx.writer.start()
                if ctx.journey_tier is not None:
                    threading.Thread(target=ctx.ingest.load_journey_tier, args=(ctx.journey_tier, ctx.store),
                                     name="journey-tier-load", daemon=True).start()
                if ctx.deadletters is not None and not intake_only:   # retention is the owner's job
                    ctx.deadletters.start()
            if supervisor is not None:
                supervisor.start()
            scheduler = BackgroundScheduler(timezone="UTC")
            if ctx.evaluator is not None:       # its own thread: a slow pass delays the next, never skips it
                ctx.evaluator.start()
            if evaluates:
                ctx.probes.schedule(scheduler)
                scheduler.add_job(anomaly_scan, "interval", args=[ctx.store], id="anomaly-scan",
                                  kwargs={"risk_threshold": cfg.anomaly.risk_threshold},
                                  seconds=cfg.anomaly.scan_interval.total_seconds(), max_instances=1,
                                  coalesce=True)
                scheduler.add_job(drift_scan, "interval", args=[ctx.store], id="schema-drift-scan",
                                  seconds=cfg.anomaly.scan_interval.total_seconds(), max_instances=1,
                                  coalesce=True)
                if cfg.anomaly.metric_series and ctx.metric_watcher is not None:
                    scheduler.add_job(ctx.metric_watcher.run_once, "interval", id="anomaly-metric-watch",
                                      seconds=cfg.anomaly.metric_interval.total_seconds(), max_instances=1,
                                      coalesce=True, next_run_time=_soon())
            ctx.scheduler = scheduler
            scheduler.start()
            if not intake_only:
                ctx.alerts.start()
        try:
            yield
        finally:
            if owner:
                if supervisor is not None:
                    supervisor.stop()
                if ctx.evaluator is not None:
                    ctx.evaluator.stop()
                if not intake_only:
                    ctx.alerts.stop()
                if scheduler:
                    scheduler.shutdown(wait=False)
                if collects:
                    ctx.writer.stop()
                    if ctx.deadletters is not None:
                        ctx.deadletters.stop()
                ctx.spool.close()
                ctx.background_running = False

    app = FastAPI(title="revwatch", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,  # webui: /docs
                  description="Business-journey SLOs and integration observability")
    app.state.ctx = ctx
    app.state.intake_supervisor = supervisor
    install_error_handlers(app)
    app.add_middleware(IngestFirstMiddleware, gate=ctx.priority, credentialed=_credentialed_by(ctx),
                       from_memory=_served_from_memory(ctx))
    if cfg.server.trusted_proxies:     # outermost: scheme and client address are settled before anything reads them
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(cfg.server.trusted_proxies))
    install_openapi(app)
    if collects:                                   # an evaluator-only server has no ingest routes
        app.include_router(collector_routes.router)
        app.include_router(source_routes.router)
    if supervisor is not None:                     # this process's intake processes store through it
        ctx.intake_health = IntakeHealth()
        app.include_router(owner_router(ctx.store, supervisor.token,
                                        lambda table, n: ctx.metrics.store_writes_total.labels(table).inc(n),
                                        ctx.priority.note_ingest, ctx.intake_health,
                                        forwarded_lines_hook(ctx.journey_tier) if ctx.journey_tier else None))
    if not intake_only:
        _include_read_routes(app)

    @app.get("/healthz")
    async def healthz():
        """Liveness: the process answers (on the event loop itself: no worker thread, so it measures the loop)."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(request: Request):
        """Readiness: the store answers (or is only busy), the spool has room and can write, the writer makes
        progress. Never waits more than ~2 s on a busy store."""
        c = ctx_of(request)
        return readiness(c)

    @app.get("/metrics")
    def metrics(request: Request):
        """Prometheus exposition (needs a read key unless server.metrics_public)."""
        c = ctx_of(request)
        if not c.config.server.metrics_public:
            authorize(request, "read")
        c.metrics.spool_bytes.set(c.spool.pending_bytes())
        tier = c.journey_tier
        c.metrics.journey_memory_bytes.set(tier.bytes_held if tier else 0)
        c.metrics.journey_memory_ready.set(1 if tier and tier.state == "ready" else 0)
        return Response(c.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if intake_only:
        return app

    @app.post("/api/v1/keys", dependencies=[Depends(require("admin"))])
    def create_key(body: KeyRequest, request: Request):
        """Create an API key (admin); the key is in this reply only."""
        if body.scope not in SCOPES:
            raise ApiError(400, f"scope must be one of {', '.join(SCOPES)}", "scope")
        token, key = ctx_of(request).keys.create(body.scope, body.name)
        return {"key": token, "id": key.key_id, "scope": key.scope}

    @app.delete("/api/v1/keys/{key_id}", dependencies=[Depends(require("admin"))])
    def revoke_key(key_id: str, request: Request):
        """Revoke an API key by id (admin)."""
        if not ctx_of(request).keys.revoke(key_id):
            raise ApiError(404, f"no key with id {key_id!r}", "key_id")
        return {"revoked": key_id}

    @app.get("/api/v1/keys", dependencies=[Depends(require("admin"))])
    def list_keys(request: Request):
        """Key ids, scopes and states (admin); never hashes."""
        return {"keys": ctx_of(request).keys.list()}

    return app


def _include_read_routes(app: FastAPI) -> None:
    """Everything but ingest: journeys, SLOs, anomalies, alerts, the Odoo webhook, the web UI."""
    app.include_router(source_routes.read_router)
    app.include_router(journey_routes.router)
    app.include_router(slo_routes.router)
    app.include_router(slo_policy_routes.router)
    app.include_router(anomaly_routes.router)
    app.include_router(alert_routes.router)
    app.include_router(alert_history.router)
    app.include_router(odoo_webhook.router)
    webui.install(app)


def ingest_problems(c: AppContext) -> list[str]:
    """Why this process would refuse ingest now, without asking the store (spool full or failing, writer failing
    beyond its backlog limit); empty when it would not. `readiness` adds the store's own answer; an intake process
    reports these to the owner (revwatch/intakes.py)."""
    return [p for p in (c.spool.refusal(), c.writer.health_problem()) if p]


def readiness(c: AppContext):
    """The /readyz answer: 200 when ingest can be acknowledged and will reach the store, else 503 + why.

    An intake process is also not ready while another intake process on the same port would refuse ingest
    (revwatch.remote_store.IntakeHealth): a load balancer cannot tell which of them will take its next request.
    The owner lists its intake processes' problems (`intake_processes`) without being unready for them: its own
    port takes ingest as before."""
    spool = c.spool
    store_ok = c.store.ping(timeout=2.0)
    pending = spool.pending_bytes()
    body = {"store": {True: "ok", False: "unreachable", None: "busy"}[store_ok], "spool_bytes": pending,
            "spool_max_bytes": spool.max_bytes, "writer_error": c.writer.last_error}
    if c.intake_health is not None:
        body["intake_processes"] = {str(i): ps for i, ps in c.intake_health.problems().items()}
    problems = ["store unreachable"] if store_ok is False else []
    problems += ingest_problems(c)
    problems += [f"intake process {i}: {p}" for i, ps in sorted(c.peer_problems.items()) for p in ps]
    if not problems:
        return {"status": "ready", **body}
    return JSONResponse({"status": "not ready", "error": "; ".join(problems), **body}, status_code=503,
                        headers={"Retry-After": retry_after_hint()})


def _soon():
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)


def quiet_garbage_collector() -> None:
    """Keep Python's cyclic GC from pausing request handling for hundreds of milliseconds.

    Measured under 1-event ingest at ~1,500 req/s: a full (generation 2) collection walked every object the
    imports left behind (FastAPI, pydantic, scikit-learn, chDB — millions) and paused the event loop up to 320 ms,
    which was the whole p99. Everything alive once the app is built lives for the process, so it is frozen out of
    collection (`gc.freeze`), and young collections run less often. Cycles created later are still collected."""
    import gc
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


# glibc's mallopt parameters (malloc.h) and what this process sets them to (keep_heap_pages)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
HEAP_KEEP_BYTES = 64 * 1024**2
HEAP_MMAP_BYTES = 32 * 1024**2


def keep_heap_pages() -> bool:
    """Let the C heap keep up to HEAP_KEEP_BYTES of freed memory instead of giving it back to the OS after every
    request; False where the C library is not glibc (nothing changed).

    A large batch builds its spool lines as thousands of small bytes objects and frees them all when the request
    ends; with glibc's default trim threshold (128 KiB) the freed top of the heap went back to the kernel each
    time and the next request faulted every page in again. Measured in-process (docs/http.md "Large batches"):
    encoding 50,000 spans for the spool took 2.9 µs per span with the defaults, 1.1 µs with this. Allocations
    under HEAP_MMAP_BYTES (request bodies, spool batches) stay on the heap too: a fixed trim threshold turns
    glibc's adaptive mmap threshold off, which would otherwise map and unmap each of them. A body over 8 MiB is
    still followed by `malloc_trim(0)` (collector.routes), so one huge request does not keep its memory."""
    import ctypes
    import ctypes.util
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, HEAP_KEEP_BYTES)) and bool(mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_BYTES))


def serve(cfg: Config) -> None:
    """Run the server until interrupted (uvicorn, the configured host and port)."""
    import uvicorn
    app = create_app(cfg)
    quiet_garbage_collector()
    keep_heap_pages()
    log.info("revwatch listening on http://%s:%d (role %s, store %s)", cfg.server.host, cfg.server.port,
             cfg.server.role, app.state.ctx.store)
    # proxy headers are handled by the app itself, for `server.trusted_proxies` only (uvicorn's own default would
    # believe any X-Forwarded-* sent from 127.0.0.1)
    uvicorn.run(app, host=cfg.server.host, port=cfg.server.port, log_level="warning", access_log=False,
                proxy_headers=False)
