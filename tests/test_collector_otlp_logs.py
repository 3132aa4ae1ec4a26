"""OTLP/HTTP logs → business events: the real OpenTelemetry SDK (logs/events API + OTLP HTTP exporter), OTLP/JSON,
gzip, partial_success, exactly-once on re-export."""
import gzip
import json

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from tests.support.servers import live_server

JS = {"Content-Type": "application/json"}
PB = {"Content-Type": "application/x-protobuf"}


def event_rows(api, where="1"):
    api.drain()
    return api.ctx.store.query(
        f"SELECT EventId, Type, CorrelationId, toString(OccurredAt) AS at, Source, Journey, "
        f"toString(Amount) AS amount, Currency, Attributes FROM {api.ctx.store.table('events')} FINAL "
        f"WHERE {where} ORDER BY at, EventId").dicts()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_events_api_through_the_otlp_http_exporter(api, compression):
    with live_server(api.client.app) as base:
        exporter = OTLPLogExporter(endpoint=f"{base}/v1/logs", headers=api.auth("ingest"), compression=compression)
        lp = LoggerProvider(resource=Resource.create({"service.name": "billing-gw"}))
        lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logger = lp.get_logger("payments")
        tracer = TracerProvider().get_tracer("t")
        logger.emit(event_name="payment.settled", timestamp=1_767_225_600_123_000_000,
                    body={"amount": "129.00", "currency": "EUR", "gateway": "adyen"},
                    attributes={"correlation.id": "pay_7001", "journey": "payment_to_posting", "attempt": 2})
        with tracer.start_as_current_span("POST /payments") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            logger.emit(event_name="payment.received", timestamp=1_767_225_500_000_000_000,
                        attributes={"amount": 5000, "currency": "JPY"})   # no correlation.id: the trace id
        logger.emit(body="GET /healthz 200", timestamp=1_767_225_600_000_000_000)   # a plain log line
        lp.shutdown()
    rows = event_rows(api)
    assert [r["Type"] for r in rows] == ["payment.received", "payment.settled"]
    received, settled = rows
    assert settled["CorrelationId"] == "pay_7001" and settled["Journey"] == "payment_to_posting"
    assert settled["amount"] == "129" and settled["Currency"] == "EUR" and settled["Source"] == "billing-gw"
    assert settled["at"].startswith("2026-01-01 00:00:00.123")
    assert settled["Attributes"] == {"gateway": "adyen", "attempt": "2"}
    assert settled["EventId"].startswith("otlp-log:")
    assert received["CorrelationId"] == trace_id and received["amount"] == "5000" and received["Currency"] == "JPY"
    assert api.ctx.metrics.rejected_total.labels("invalid_event")._value.get() == 1   # the log line


def _request(records, service="crm"):
    return {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                              "scopeLogs": [{"scope": {"name": "x"}, "logRecords": records}]}]}


def _attr(k, v):
    kind = {str: "stringValue", int: "intValue", float: "doubleValue", bool: "boolValue"}[type(v)]
    return {"key": k, "value": {kind: str(v) if kind == "intValue" else v}}


def _record(name=None, t="1767225600000000000", **attrs):
    rec = {"timeUnixNano": t, "attributes": [_attr(k.replace("_", "."), v) for k, v in attrs.items()]}
    if name:
        rec["eventName"] = name
    return rec


def test_json_partial_success_and_exactly_once_on_reexport(api):
    records = [_record("invoice.posted", correlation_id="inv_1", event_id="e-1"),
               _record(None, correlation_id="inv_2"),                                  # not an event
               {**_record(None, correlation_id="inv_3"),                               # event.name attribute
                "attributes": [_attr("event.name", "invoice.sent"), _attr("correlation.id", "inv_3")]},
               _record("payment.settled", correlation_id="inv_4", amount=12.5),        # a double amount
               _record("Not A Type", correlation_id="inv_5")]                          # fails validation
    body = json.dumps(_request(records)).encode()
    r = api.post("/v1/logs", content=body, headers=JS)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    ps = r.json()["partialSuccess"]
    assert ps["rejectedLogRecords"] == "3"
    assert "record 1: not an event" in ps["errorMessage"] and "record 3:" in ps["errorMessage"]
    assert "record 4:" in ps["errorMessage"]
    # the Collector retries the same export (gzip this time): nothing is stored twice, nothing new rejected twice
    r = api.post("/v1/logs", content=gzip.compress(body), headers={**JS, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedLogRecords"] == "3"
    rows = event_rows(api)
    assert [(x["EventId"], x["Type"], x["CorrelationId"], x["Source"]) for x in rows][:1] == \
        [("e-1", "invoice.posted", "inv_1", "crm")]
    assert sorted(x["Type"] for x in rows) == ["invoice.posted", "invoice.sent"]
    assert api.ctx.metrics.duplicates_total.labels("event")._value.get() == 2


def test_protobuf_all_good_has_no_partial_success(api):
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "odoo"
    rec = rl.scope_logs.add().log_records.add(event_name="invoice.posted", time_unix_nano=1_767_225_600_000_000_000,
                                              trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"))
    rec.attributes.add(key="currency").value.string_value = "BHD"
    rec.attributes.add(key="amount").value.string_value = "1.250"
    r = api.post("/v1/logs", content=req.SerializeToString(), headers=PB)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(r.content).HasField("partial_success")
    (row,) = event_rows(api)
    assert row["CorrelationId"] == "0af7651916cd43dd8448eb211c80319c" and row["amount"] == "1.25"


@pytest.mark.parametrize("body,headers,status", [
    (b"{not json", JS, 400),
    (b"\x00\x01garbage", PB, 400),
    (b"{}", {"Content-Type": "text/xml"}, 415),
    (b"xx", {**JS, "Content-Encoding": "gzip"}, 400),
])
def test_bad_exports_are_refused_with_an_rpc_status(api, body, headers, status):
    r = api.post("/v1/logs", content=body, headers=headers)
    assert r.status_code == status
    if headers.get("Content-Type") == "application/json" or status == 415:
        assert r.json()["error"]


def test_needs_an_ingest_key(api):
    assert api.client.post("/v1/logs", content=b"{}", headers=JS).status_code == 401
    assert api.post("/v1/logs", scope="read", content=b"{}", headers=JS).status_code == 403
