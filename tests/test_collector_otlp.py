"""OTLP/HTTP receiver: the real OpenTelemetry exporter, protobuf, JSON, gzip, every error status, duplicates."""
import gzip
import json

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from collector import routes as collector_routes
from tests.support.servers import FIXTURES, live_server

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}


def span_rows(api, where="1"):
    api.drain()
    return api.ctx.store.query(
        f"SELECT TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, Duration, StatusCode, CorrelationId, "
        f"SpanAttributes FROM {api.ctx.store.table('spans')} WHERE {where} ORDER BY SpanName").dicts()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_real_otel_exporter_end_to_end(api, compression):
    with live_server(api.client.app) as base:
        exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=api.auth("ingest"), compression=compression)
        tp = TracerProvider(resource=Resource.create({"service.name": "billing-gw"}))
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = tp.get_tracer("test")
        with tracer.start_as_current_span("POST /payments", attributes={"correlation.id": "pay_42"}):
            with tracer.start_as_current_span("odoo.execute_kw") as child:
                child.set_status(Status(StatusCode.ERROR, "AccessError"))
        with tracer.start_as_current_span("healthcheck"):
            pass
        tp.shutdown()
    rows = span_rows(api)
    by_name = {r["SpanName"]: r for r in rows}
    assert set(by_name) == {"POST /payments", "odoo.execute_kw", "healthcheck"}
    pay, child = by_name["POST /payments"], by_name["odoo.execute_kw"]
    assert pay["CorrelationId"] == "pay_42"
    # the child was exported alone (SimpleSpanProcessor, before its parent): it carries no attribute, so it is
    # stored under its trace id, and the journey lookup still finds it through the trace
    assert child["ParentSpanId"] == pay["SpanId"] and child["TraceId"] == pay["TraceId"]
    assert child["StatusCode"] == "Error" and pay["SpanKind"] == "Internal"
    assert by_name["healthcheck"]["CorrelationId"] == by_name["healthcheck"]["TraceId"]
    assert pay["ServiceName"] == "billing-gw" and pay["Duration"] >= child["Duration"] > 0
    doc = api.get("/api/v1/journeys/pay_42").json()
    assert [x["name"] for x in doc["timeline"]] == ["POST /payments", "odoo.execute_kw"]
    assert doc["counts"]["errors"] == 1


def test_batch_siblings_inherit_correlation_id(api):
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "crm"
    ss = rs.scope_spans.add()
    tid = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    for i, (name, attrs) in enumerate([("parent", {"odoo.correlation_id": "inv_7"}), ("child", {})]):
        sp = ss.spans.add(trace_id=tid, span_id=bytes([0, 0, 0, 0, 0, 0, 0, i + 1]), name=name,
                          start_time_unix_nano=1_700_000_000_000_000_000 + i,
                          end_time_unix_nano=1_700_000_001_000_000_000)
        for k, v in attrs.items():
            sp.attributes.add(key=k).value.string_value = v
    r = api.post("/v1/traces", content=req.SerializeToString(), headers=PB)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert not resp.HasField("partial_success")
    assert {x["CorrelationId"] for x in span_rows(api)} == {"inv_7"}


def test_official_otlp_json_example(api):
    body = (FIXTURES / "otlp-trace.json").read_bytes()
    r = api.post("/v1/traces", content=body, headers=JS)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {}
    rows = span_rows(api)
    assert len(rows) == 1
    row = rows[0]
    assert row["TraceId"] == "5b8efff798038103d269b633813fc60c"          # upper-case hex → lower-case
    assert row["SpanId"] == "eee19b7ec3c1b174" and row["ParentSpanId"] == "eee19b7ec3c1b173"
    assert row["SpanKind"] == "Server" and row["Duration"] == 1_000_000_000     # int64 strings parsed
    assert row["ServiceName"] == "my.service" and row["SpanAttributes"] == {"my.span.attr": "some value"}
    assert row["CorrelationId"] == row["TraceId"]                        # no attribute: the trace id
    r = api.post("/v1/traces", content=gzip.compress(body), headers={**JS, "Content-Encoding": "gzip"})
    assert r.status_code == 200
    assert len(span_rows(api)) == 1                                      # re-sent: still one


def _json_span(trace_id, span_id, name="s"):
    return {"traceId": trace_id, "spanId": span_id, "name": name, "startTimeUnixNano": "1700000000000000000",
            "endTimeUnixNano": "1700000000500000000", "kind": 3, "status": {"code": 2, "message": "boom"},
            "attributes": [{"key": "correlation.id", "value": {"stringValue": "c-json"}},
                           {"key": "retries", "value": {"intValue": "3"}},
                           {"key": "ok", "value": {"boolValue": True}}],
            "unknownFutureField": {"x": 1}}


def test_partial_success_in_json_and_protobuf(api):
    good = _json_span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "good")
    zero = _json_span("00000000000000000000000000000000", "b7ad6b7169203332", "zero-trace")
    short = _json_span("0af7651916cd43dd8448eb211c80319c", "b7ad", "short-span")
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [good, zero, short]}]}]}
    r = api.post("/v1/traces", content=json.dumps(body), headers=JS)
    assert r.status_code == 200
    ps = r.json()["partialSuccess"]
    assert ps["rejectedSpans"] == "2" and "zero-trace" in ps["errorMessage"]
    rows = span_rows(api)
    assert [x["SpanName"] for x in rows] == ["good"]
    assert rows[0]["SpanAttributes"] == {"correlation.id": "c-json", "retries": "3", "ok": "true"}
    assert rows[0]["StatusCode"] == "Error" and rows[0]["SpanKind"] == "Client"

    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.spans.add(trace_id=bytes(16), span_id=b"12345678", name="bad", start_time_unix_nano=1)
    r = api.post("/v1/traces", content=req.SerializeToString(), headers=PB)
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert r.status_code == 200 and resp.partial_success.rejected_spans == 1


@pytest.mark.parametrize("body, headers, status", [
    (b"{", JS, 400),
    (b"[1,2]", JS, 400),
    (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}).encode(), JS, 400),
    (json.dumps({"resourceSpans": "nope"}).encode(), JS, 400),
    (b"\x00\x01garbage\xff", PB, 400),
    (gzip.compress(b"not protobuf at all"), {**PB, "Content-Encoding": "gzip"}, 400),
    (b"\x1f\x8b\x08\x00truncated", {**PB, "Content-Encoding": "gzip"}, 400),
    (b"abc", {**PB, "Content-Encoding": "br"}, 415),
    (b"<xml/>", {"Content-Type": "text/xml"}, 415),
    (b"{}", {}, 415),
])
def test_bad_requests_are_4xx_with_a_status_body(api, body, headers, status):
    r = api.post("/v1/traces", content=body, headers=headers)
    assert r.status_code == status, r.text
    if r.headers["content-type"] == "application/json":
        assert r.json()["error"]


def test_oversize_before_and_after_decompression_is_413(api_factory):
    api = api_factory("server: {max_body_bytes: 4096}")
    r = api.post("/v1/traces", content=b"x" * 5000, headers=PB)
    assert r.status_code == 413
    bomb = gzip.compress(b"\x00" * 100_000)           # small on the wire, large inflated
    assert len(bomb) < 4096
    r = api.post("/v1/traces", content=bomb, headers={**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert api.ctx.metrics.rejected_total.labels("too_large")._value.get() == 2


def test_throttled_when_too_many_exports_in_flight(api):
    taken = 0
    while collector_routes._inflight.acquire(blocking=False):
        taken += 1
    try:
        r = api.post("/v1/traces", content=b"{}", headers=JS)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    finally:
        for _ in range(taken):
            collector_routes._inflight.release()
    assert api.post("/v1/traces", content=b"{}", headers=JS).status_code == 200


def test_resent_spans_are_stored_once(api):
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        _json_span("1af7651916cd43dd8448eb211c80319c", "c7ad6b7169203331", "a"),
        _json_span("1af7651916cd43dd8448eb211c80319c", "c7ad6b7169203332", "b")]}]}]}
    for _ in range(3):
        assert api.post("/v1/traces", content=json.dumps(body), headers=JS).status_code == 200
    assert len(span_rows(api)) == 2
    assert api.ctx.metrics.duplicates_total.labels("span")._value.get() == 4
