"""Sends simulated traffic to a revwatch server the way real systems would: business events through
`POST /api/v1/events`, spans through the OpenTelemetry SDK and its OTLP/HTTP exporter (one TracerProvider per
service, with the simulated timestamps)."""
from __future__ import annotations

import random
import time

import httpx
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from revwatch.sim.model import SpanSpec

_KINDS = {"client": SpanKind.CLIENT, "server": SpanKind.SERVER, "producer": SpanKind.PRODUCER,
          "internal": SpanKind.INTERNAL}


class SeededIds(IdGenerator):
    """Deterministic trace and span ids, so a seeded run is reproducible end to end."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed ^ 0x5EED)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1


class SendError(Exception):
    """The server refused or could not be reached."""


def unreachable(base: str, e: Exception) -> str:
    """One line for a server that does not answer: where, and the likely reason."""
    return f"cannot reach {base} ({type(e).__name__}): is `revwatch serve` running there?"


class Sender:
    """Delivers events and spans to one revwatch server."""

    def __init__(self, base_url: str, api_key: str, seed: int = 0, batch: int = 2000):
        self.base = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.http = httpx.Client(timeout=60)
        self.batch = batch
        self.seed = seed
        self._providers: dict[str, TracerProvider] = {}
        self.sent_events = self.sent_spans = self.duplicates = 0
        self.conflicts = self.rejected = 0               # events the server refused (same id, other content / invalid)
        self.first_problem: str | None = None            # the server's words for the first refused event

    def check(self) -> None:
        """Fail fast, with one line, when no revwatch answers at the base URL (before anything is simulated)."""
        try:
            self.http.get(f"{self.base}/healthz", timeout=5)
        except httpx.HTTPError as e:
            raise SendError(unreachable(self.base, e)) from None

    def _provider(self, service: str) -> TracerProvider:
        tp = self._providers.get(service)
        if tp is None:
            tp = TracerProvider(resource=Resource.create({"service.name": service}),
                                id_generator=SeededIds(self.seed + len(self._providers)))
            exporter = OTLPSpanExporter(endpoint=f"{self.base}/v1/traces", headers=self.headers, timeout=60)
            tp.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=200_000, max_export_batch_size=4096,
                                                     schedule_delay_millis=200))
            self._providers[service] = tp
        return tp

    def events(self, items: list[dict]) -> None:
        """POST events in batches, retrying on 429/503 as a well-behaved client would. Refused events (a 409 or
        200 reply's `conflicts`, its `rejected`) are counted, and the first reason kept, and sending goes on: the
        caller reports them once at the end (`problems`). A refused key or a server fault stops the run."""
        for i in range(0, len(items), self.batch):
            chunk = items[i:i + self.batch]
            for attempt in range(20):
                try:
                    r = self.http.post(f"{self.base}/api/v1/events", json=chunk, headers=self.headers)
                except httpx.HTTPError as e:
                    if attempt == 19:
                        raise SendError(unreachable(self.base, e)) from None
                    time.sleep(0.5)
                    continue
                if r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
                if r.status_code not in (200, 409):
                    raise SendError(f"events refused with HTTP {r.status_code}: {_error_of(r)}")
                self._count(r.json(), len(chunk))
                break

    def _count(self, body: dict, sent: int) -> None:
        rejected = int(body.get("rejected_total", len(body.get("rejected", []))))
        accepted, duplicates = int(body.get("accepted", 0)), int(body.get("duplicates", 0))
        conflicts = max(sent - accepted - duplicates - rejected, len(body.get("conflicts", [])))
        self.sent_events += accepted
        self.duplicates += duplicates
        self.conflicts += conflicts
        self.rejected += rejected
        if self.first_problem is None and (conflicts or rejected):
            first = (body.get("conflicts") or body.get("rejected") or [{}])[0]
            self.first_problem = str(first.get("error") or body.get("error") or "refused")

    def problems(self) -> str | None:
        """One line about the events the server refused in this run, None when it took them all."""
        if not (self.conflicts or self.rejected):
            return None
        parts = []
        if self.conflicts:
            parts.append(f"{self.conflicts:,} conflicts (an event id already stored with other content: another run "
                         f"reused it; run without --seed, or repeat the same --seed and --end)")
        if self.rejected:
            parts.append(f"{self.rejected:,} invalid")
        return f"the server refused {' and '.join(parts)}; first: {self.first_problem}"

    def spans(self, specs: list[SpanSpec]) -> None:
        """Create the spans with the SDK (explicit simulated times) and let the exporter batch them."""
        for s in specs:
            self._span(s, None)
            self.sent_spans += 1 + len(s.children)

    def _span(self, s: SpanSpec, parent) -> None:
        tracer = self._provider(s.service).get_tracer("revwatch.sim")
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(s.name, context=ctx, kind=_KINDS.get(s.kind, SpanKind.INTERNAL),
                                 attributes=s.attributes, start_time=int(s.start.timestamp() * 1e9))
        if s.error:
            span.set_status(Status(StatusCode.ERROR, s.error))
        for child in s.children:
            self._span(child, span)
        span.end(end_time=int(s.end.timestamp() * 1e9))

    def flush(self) -> None:
        """Push every buffered span out."""
        for tp in self._providers.values():
            tp.force_flush(60_000)

    def close(self) -> None:
        """Flush and stop the exporters."""
        for tp in self._providers.values():
            tp.shutdown()
        self.http.close()


def _error_of(r: httpx.Response) -> str:
    """The `error` of a JSON error reply, else the start of the body (one line)."""
    try:
        return str(r.json().get("error"))[:200]
    except ValueError:
        return r.text[:200].replace("\n", " ")
