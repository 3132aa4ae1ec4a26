"""Every per-span check of the OTLP decoder (collector/otlp.py), one invalid span at a time beside a valid one:
the invalid span alone is rejected, with the reason the sender reads in `partial_success`."""
from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.correlation import CorrelationRules
from collector.limits import MAX_ATTR_VALUE, MAX_NAME, MAX_SPAN_EVENTS
from collector.otlp import MAX_UNIX_NANO, decode_traces

RULES = CorrelationRules(["correlation.id"], ["correlation.id"])
GOOD = {"trace_id": b"\x01" * 16, "span_id": b"\x02" * 8, "name": "ok", "start_time_unix_nano": 10**18,
        "end_time_unix_nano": 10**18 + 5}


def body(bad: dict, fill=None) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.spans.add(**GOOD).attributes.add(key="correlation.id").value.string_value = "pay_1"
    sp = ss.spans.add(**{**GOOD, "span_id": b"\x03" * 8, "name": "bad", **bad})
    if fill:
        fill(sp)
    return req.SerializeToString()


def _events(n: int, t: int = 10**18):
    return lambda sp: [sp.events.add(time_unix_nano=t, name="e") for _ in range(n)]


@pytest.mark.parametrize("bad,fill,reason", [
    ({"trace_id": bytes(16)}, None, "trace_id must be 16 non-zero bytes"),
    ({"trace_id": b"\x01" * 15}, None, "trace_id must be 16 non-zero bytes"),
    ({"span_id": bytes(8)}, None, "span_id must be 8 non-zero bytes"),
    ({"parent_span_id": b"\x01" * 7}, None, "parent_span_id must be 8 bytes"),
    ({"start_time_unix_nano": 0}, None, "start_time_unix_nano is missing"),
    ({"start_time_unix_nano": MAX_UNIX_NANO}, None, "after the supported range"),
    ({}, _events(MAX_SPAN_EVENTS + 1), f"more than {MAX_SPAN_EVENTS} events"),
    ({}, _events(1, MAX_UNIX_NANO), "an event's time_unix_nano is after the supported range"),
    ({"name": "n" * (MAX_NAME + 1)}, None, f"longer than {MAX_NAME} characters"),
    ({"trace_state": "t" * (MAX_NAME + 1)}, None, f"longer than {MAX_NAME} characters"),
    ({}, lambda sp: setattr(sp.status, "message", "m" * (MAX_NAME + 1)), f"longer than {MAX_NAME} characters"),
    ({}, lambda sp: setattr(sp.attributes.add(key="k").value, "string_value", "v" * (MAX_ATTR_VALUE + 1)),
     f"value longer than {MAX_ATTR_VALUE}"),
    ({}, lambda sp: setattr(sp.attributes.add(key="correlation.id").value, "string_value", "c" * 300),
     "correlation ID is longer than"),
])
def test_an_invalid_span_is_rejected_alone_with_its_reason(bad, fill, reason):
    out = decode_traces(body(bad, fill), False, RULES)
    assert out.rejected == 1 and [r[5] for r in out.rows] == ["ok"]
    assert reason in out.errors[0]


def test_a_valid_span_keeps_every_field():
    def fill(sp):
        sp.parent_span_id, sp.trace_state, sp.kind = b"\x04" * 8, "k=v", 3
        sp.status.code, sp.status.message = 2, "boom"
        sp.events.add(time_unix_nano=10**18 + 1, name="retry").attributes.add(key="n").value.int_value = 2
        ln = sp.links.add(trace_id=b"\x05" * 16, span_id=b"\x06" * 8, trace_state="l")
        ln.attributes.add(key="why").value.string_value = "follows"
    out = decode_traces(body({}, fill), False, RULES)
    assert out.rejected == 0
    row = next(r for r in out.rows if r[5] == "bad")
    assert row[:8] == [10**18, "01" * 16, "03" * 8, "04" * 8, "k=v", "bad", "Client", ""]
    assert row[12:15] == [5, "Error", "boom"]
    assert row[15:22] == [[10**18 + 1], ["retry"], [{"n": "2"}], ["05" * 16], ["06" * 8], ["l"], [{"why": "follows"}]]
    assert row[22] == "pay_1"            # no correlation attribute of its own: its trace sibling carries one
