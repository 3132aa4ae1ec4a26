"""Where a CLI command reads and changes data: the store itself (`LocalTarget`), or the running `revwatch serve`
that holds it (`RemoteTarget`, through the HTTP API with a key of the route's scope).

Commands ask `open_target(cfg)` for a target and call its methods; they never branch on which kind they got. Both
kinds return the same documents (the API's JSON shapes), so a command prints the same thing either way.

Invariants: a target method either returns its result or exits through `fail` with one line (exit 2 for bad
input or a refused request, 1 for a server or store fault); "not found" that the command reports itself is
returned as None/False. The embedded store admits one process: when a server holds it, `open_target` says so on
stderr and goes through the server.
"""
from __future__ import annotations

import abc
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from revwatch.cli.app import err, fail, key_from_env
from revwatch.config import Config
from revwatch.store import Store, StoreError, StoreLocked, store_from_config


@dataclass(frozen=True)
class JourneyQuery:
    """The filters of `journeys search`. The instants come both as typed (`since_at`) and as the user wrote
    them (`since`), which is what the API takes."""
    attr: tuple[str, str] | None
    customer: str | None
    journey: str | None
    since: str | None
    until: str | None
    since_at: dt.datetime | None
    until_at: dt.datetime | None
    stuck: str | None
    limit: int

    def api_params(self) -> dict[str, Any]:
        attr = f"{self.attr[0]}:{self.attr[1]}" if self.attr else None
        return {k: v for k, v in {"attr": attr, "customer": self.customer, "journey": self.journey,
                                  "since": self.since, "until": self.until, "stuck": self.stuck,
                                  "limit": self.limit}.items() if v is not None}


@dataclass(frozen=True)
class FindingQuery:
    """The filters of `anomaly list` (one page: `limit` rows after `cursor`)."""
    kind: str | None
    status: str | None
    cause: str | None
    customer: str | None
    since: str | None
    since_at: dt.datetime | None
    min_score: float | None

    def api_params(self, limit: int, cursor: str | None) -> dict[str, Any]:
        return {k: v for k, v in {"kind": self.kind, "status": self.status, "cause": self.cause,
                                  "customer": self.customer, "since": self.since, "min_score": self.min_score,
                                  "limit": limit, "cursor": cursor}.items() if v is not None}


class Target(abc.ABC):
    """What the CLI's data commands need, whoever holds the store."""

    @abc.abstractmethod
    def keys_create(self, scope: str, name: str) -> str:
        """A new key of `scope` (the token, shown once)."""

    @abc.abstractmethod
    def annotate(self, body: dict) -> dict:
        """Store an annotation (`POST /api/v1/annotations` body); the stored annotation."""

    @abc.abstractmethod
    def keys_list(self) -> list[dict]:
        """Every key: id, scope, name, created_at, revoked."""

    @abc.abstractmethod
    def keys_revoke(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such key."""

    @abc.abstractmethod
    def slo_status(self, at: str | None, when: dt.datetime | None) -> tuple[list[dict], list[dict]]:
        """(journey/spec SLO documents, Prometheus-backed SLO documents) as of `when` (now when None)."""

    @abc.abstractmethod
    def trace(self, correlation_id: str) -> dict | None:
        """The timeline document of one correlation ID; None when nothing is recorded for it."""

    @abc.abstractmethod
    def journeys_search(self, q: JourneyQuery) -> list[dict]:
        """Journeys matching the filters (or, with `q.stuck`, the instances past the journey's threshold)."""

    @abc.abstractmethod
    def funnel(self, journey: str, since: dt.datetime, until: dt.datetime, filters: dict[str, str],
               by: str | None) -> list[dict]:
        """The funnels of a journey (`GET /api/v1/funnels/{journey}`'s `funnels`)."""

    @abc.abstractmethod
    def forecast(self, name: str) -> list[dict]:
        """The in-flight forecast of a journey SLO per group (`GET /api/v1/slos/{name}/forecast`)."""

    @abc.abstractmethod
    def anomaly_scan(self, limit: int) -> tuple[dict, list[dict]]:
        """Run the detectors now: (scan summary, top `limit` findings)."""

    @abc.abstractmethod
    def anomaly_list(self, q: FindingQuery, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        """One page of findings and the cursor of the next one (None at the end)."""

    @abc.abstractmethod
    def anomaly_ack(self, finding_id: str) -> dict | None:
        """Acknowledge a finding; None when there is no such finding."""

    @abc.abstractmethod
    def deadletters_list(self, params: dict[str, Any]) -> tuple[list[dict], str | None]:
        """One page of dead letters (the API's filters) and the next cursor."""

    @abc.abstractmethod
    def deadletter(self, letter_id: str) -> dict | None:
        """One dead letter with its kept body, or None."""

    @abc.abstractmethod
    def deadletters_replay(self, params: dict[str, Any]) -> dict:
        """Replay open letters (the API's filters); the replay summary."""

    @abc.abstractmethod
    def local_store(self, why: str) -> Store:
        """The store itself, for work only this process can do (probes run); exit 2 with `why` when a server
        holds it."""


def as_api_json(doc: Any) -> Any:
    """`doc` as the API's JSON carries it (FastAPI's encoder: datetimes in ISO form with a "T", tuples as lists),
    so a local answer prints exactly as the server's would."""
    from fastapi.encoders import jsonable_encoder
    return jsonable_encoder(doc)


class LocalTarget(Target):
    """The store opened by this process (nobody else holds it). Every document it returns goes through
    `as_api_json`, the shape RemoteTarget gets from the API."""

    def __init__(self, store: Store, cfg: Config):
        self.store, self.cfg = store, cfg

    def keys_create(self, scope: str, name: str) -> str:
        from revwatch.auth import KeyStore
        return KeyStore(self.store).create(scope, name)[0]

    def keys_list(self) -> list[dict]:
        from revwatch.auth import KeyStore
        return as_api_json(KeyStore(self.store).list())

    def annotate(self, body: dict) -> dict:
        from pydantic import ValidationError
        from slo.annotations import AnnotationError, AnnotationLog, AnnotationRequest
        from slo.spec import SpecError, resolve
        try:
            req = AnnotationRequest.model_validate(body)
            return as_api_json(AnnotationLog(self.store).add(req, "cli", {s.name for s in resolve(self.cfg)})
                               .as_dict())
        except ValidationError as e:
            first = e.errors()[0]
            fail(f"{'.'.join(map(str, first['loc']))}: {first['msg'].removeprefix('Value error, ')}")
        except (AnnotationError, SpecError) as e:
            fail(str(e))

    def keys_revoke(self, key_id: str) -> bool:
        from revwatch.auth import KeyStore
        return KeyStore(self.store).revoke(key_id)

    def slo_status(self, at: str | None, when: dt.datetime | None) -> tuple[list[dict], list[dict]]:
        from slo.engine import SloEngine
        from slo.spec import SpecError
        try:
            engine = SloEngine(self.store, self.cfg)
            return (as_api_json([r.as_dict() for r in engine.evaluate(when)]),
                    as_api_json(engine.prometheus_results(when)))
        except SpecError as e:
            fail(str(e))

    def _journeys(self):
        from revwatch.journeys import JourneyService
        from slo.spec import journey_thresholds
        return JourneyService(self.store, self.cfg.journeys, journey_thresholds(self.cfg))

    def trace(self, correlation_id: str) -> dict | None:
        from revwatch.journeys import NotFound
        try:
            return as_api_json(self._journeys().lookup(correlation_id))
        except NotFound:
            return None

    def journeys_search(self, q: JourneyQuery) -> list[dict]:
        svc = self._journeys()
        if q.stuck:
            return as_api_json([s.as_dict() for s in svc.stuck(q.stuck, limit=q.limit)])
        return as_api_json(svc.search(q.attr, q.customer, q.journey, q.since_at, q.until_at, q.limit))

    def funnel(self, journey: str, since: dt.datetime, until: dt.datetime, filters: dict[str, str],
               by: str | None) -> list[dict]:
        from revwatch.journeys.funnel import funnel
        return as_api_json([f.as_dict() for f in funnel(self.store, self.cfg.journeys, journey, since, until,
                                                        filters, by)])

    def forecast(self, name: str) -> list[dict]:
        from slo.engine import SloEngine
        from slo.forecast import forecast
        engine = SloEngine(self.store, self.cfg)
        spec = engine.spec(name)
        if spec is None:
            fail(f"no SLO named {name!r}")
        if not spec.is_journey:
            fail(f"{name!r} is a {spec.kind} SLO: forecasts follow journey instances in flight")
        return as_api_json(forecast(engine, spec))

    def anomaly_scan(self, limit: int) -> tuple[dict, list[dict]]:
        from anomaly.detectors import list_findings, scan
        return as_api_json(scan(self.store, risk_threshold=self.cfg.anomaly.risk_threshold)), \
            as_api_json(list_findings(self.store, limit=limit))

    def anomaly_list(self, q: FindingQuery, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        from anomaly.findings import CursorError, list_findings
        try:
            items, next_cursor = list_findings(self.store, q.kind, q.status, q.cause, q.customer, q.since_at,
                                               q.min_score, limit, cursor)
            return as_api_json(items), next_cursor
        except CursorError as e:
            fail(str(e))

    def anomaly_ack(self, finding_id: str) -> dict | None:
        from anomaly.findings import acknowledge
        return as_api_json(acknowledge(self.store, finding_id))

    def _deadletters(self):
        from collector.deadletters import DeadLetters
        from revwatch.metrics import Metrics
        return DeadLetters(self.store, Metrics(), self.cfg.deadletters)

    def deadletters_list(self, params: dict[str, Any]) -> tuple[list[dict], str | None]:
        from revwatch.units import parse_instant
        since = parse_instant(params["since"]) if params.get("since") else None
        try:
            return self._deadletters().find(params.get("source"), params.get("reason"), since, params.get("cursor"),
                                             params.get("limit", 100), params.get("status"))
        except ValueError as e:
            fail(str(e))

    def deadletter(self, letter_id: str) -> dict | None:
        return self._deadletters().get(letter_id)

    def deadletters_replay(self, params: dict[str, Any]) -> dict:
        import asyncio

        from collector.source_routes import replay
        from revwatch.server import build_context
        from revwatch.units import parse_instant
        ctx = build_context(self.cfg, self.store)       # the same intake, spool and mappings the server uses
        since = parse_instant(params["since"]) if params.get("since") else None
        try:
            summary = asyncio.run(replay(ctx, params.get("source"), params.get("reason"), since,
                                         params.get("letter_id"), params.get("limit", 1000)))
            while (batch := ctx.spool.next_batch(ctx.writer.batch_rows)) is not None:
                ctx.writer.write_batch(batch)           # into the store before this process ends
        finally:
            ctx.spool.close()
        return summary

    def local_store(self, why: str) -> Store:
        return self.store


class RemoteTarget(Target):
    """A running `revwatch serve` that holds the store, through its HTTP API."""

    def __init__(self, cfg: Config):
        self.base = cfg.server.local_url()
        self.key = os.environ.get("REVWATCH_API_KEY") or os.environ.get("REVWATCH_ADMIN_KEY")

    def request(self, method: str, path: str, scope: str | None = None, **kw) -> Any:
        """Call the server's API; exits 2 with one line when it cannot. `scope` picks the key (see
        key_from_env); by default admin for writes and keys, read otherwise."""
        scope = scope or ("admin" if method != "GET" or path.startswith("/api/v1/keys") else "read")
        key = key_from_env(scope) or self.key
        if not key:
            fail(f"the server at {self.base} holds the store; set REVWATCH_{scope.upper()}_KEY (or REVWATCH_API_KEY) "
                 f"to a key with scope '{scope}'")
        try:
            r = httpx.request(method, self.base + path, headers={"Authorization": f"Bearer {key}"},
                              timeout=60, **kw)
        except httpx.HTTPError as e:
            fail(f"the store is held by another process and its server at {self.base} does not answer ({e})")
        if r.status_code >= 400:
            try:
                msg = r.json().get("error", r.text)
            except ValueError:
                msg = r.text
            fail(f"server answered {r.status_code}: {msg}", 1 if r.status_code >= 500 else 2)
        return r.json()

    def keys_create(self, scope: str, name: str) -> str:
        return self.request("POST", "/api/v1/keys", json={"scope": scope, "name": name})["key"]

    def keys_list(self) -> list[dict]:
        return self.request("GET", "/api/v1/keys")["keys"]

    def annotate(self, body: dict) -> dict:
        return self.request("POST", "/api/v1/annotations", scope="ingest", json=body)

    def keys_revoke(self, key_id: str) -> bool:
        self.request("DELETE", f"/api/v1/keys/{key_id}")     # an unknown id is the server's 404: exit 2
        return True

    def slo_status(self, at: str | None, when: dt.datetime | None) -> tuple[list[dict], list[dict]]:
        body = self.request("GET", "/api/v1/slos", params={"at": at} if at else None)
        return body["slos"], body.get("prometheus_slos", [])

    def trace(self, correlation_id: str) -> dict | None:
        return self.request("GET", f"/api/v1/journeys/{quote(correlation_id, safe='')}")

    def journeys_search(self, q: JourneyQuery) -> list[dict]:
        return self.request("GET", "/api/v1/journeys", params=q.api_params())["items"]

    def funnel(self, journey: str, since: dt.datetime, until: dt.datetime, filters: dict[str, str],
               by: str | None) -> list[dict]:
        params: dict[str, Any] = {"since": since.isoformat(), "until": until.isoformat(),
                                  "attr": [f"{k}:{v}" for k, v in filters.items() if k != "source"]}
        if "source" in filters:
            params["source"] = filters["source"]
        if by:
            params["by"] = by
        return self.request("GET", f"/api/v1/funnels/{quote(journey, safe='')}", params=params)["funnels"]

    def forecast(self, name: str) -> list[dict]:
        return self.request("GET", f"/api/v1/slos/{quote(name, safe='')}/forecast")["forecasts"]

    def anomaly_scan(self, limit: int) -> tuple[dict, list[dict]]:
        summary = self.request("POST", "/api/v1/anomalies/scan")
        return summary, self.request("GET", "/api/v1/anomalies", params={"limit": limit})["items"]

    def anomaly_list(self, q: FindingQuery, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        doc = self.request("GET", "/api/v1/anomalies", params=q.api_params(limit, cursor))
        return doc["items"], doc.get("next_cursor")

    def anomaly_ack(self, finding_id: str) -> dict | None:
        return self.request("POST", f"/api/v1/anomalies/{finding_id}/ack")

    def deadletters_list(self, params: dict[str, Any]) -> tuple[list[dict], str | None]:
        doc = self.request("GET", "/api/v1/deadletters", params=params)
        return doc["items"], doc.get("next_cursor")

    def deadletter(self, letter_id: str) -> dict | None:
        return self.request("GET", f"/api/v1/deadletters/{quote(letter_id, safe='')}")

    def deadletters_replay(self, params: dict[str, Any]) -> dict:
        return self.request("POST", "/api/v1/deadletters/replay", params=params)

    def local_store(self, why: str) -> Store:
        fail(why)


def open_target(cfg: Config) -> Target:
    """The store opened here, or the server that holds it (said on stderr); exit 1 when the store is down."""
    try:
        return LocalTarget(store_from_config(cfg), cfg)
    except StoreLocked:
        err.print("[dim]store is held by a running server; using its API[/dim]")
        return RemoteTarget(cfg)
    except StoreError as e:
        fail(str(e), 1)
