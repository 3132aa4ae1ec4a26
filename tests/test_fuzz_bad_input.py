"""1,000 malformed bodies of varied shapes: always a 4xx with a JSON or OTLP status body, never a 5xx."""
import gzip
import json

from hypothesis import HealthCheck, given, settings, strategies as st

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=20)
span_like = st.fixed_dictionaries({}, optional={
    "traceId": st.text(max_size=40) | st.integers(), "spanId": st.text(max_size=20) | st.none(),
    "name": json_values, "startTimeUnixNano": st.text(max_size=25) | st.integers(),
    "kind": st.integers(-5, 50) | st.text(max_size=5), "attributes": json_values, "status": json_values})
otlp_like = st.builds(lambda spans, extra: {"resourceSpans": [{"scopeSpans": [{"spans": spans}], **extra}]},
                      st.lists(span_like, max_size=3), st.dictionaries(st.text(max_size=6), json_values, max_size=2))
event_like = st.dictionaries(st.sampled_from(["event_id", "type", "correlation_id", "occurred_at", "source",
                                              "amount", "currency", "attributes", "journey", "x"]),
                             json_values | st.text(max_size=30), max_size=9)

def fuzz(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                    database=None)


def check(r):
    assert 400 <= r.status_code < 500 or r.status_code == 200, (r.status_code, r.text[:200])
    assert r.status_code < 500


@fuzz(400)
@given(body=st.binary(max_size=300) | otlp_like.map(lambda d: json.dumps(d).encode()),
       ctype=st.sampled_from(["application/x-protobuf", "application/json"]), gz=st.booleans())
def test_traces_never_5xx(api, body, ctype, gz):
    headers = {"Content-Type": ctype}
    if gz:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    check(api.post("/v1/traces", content=body, headers=headers))


@fuzz(400)
@given(items=st.lists(event_like, max_size=5) | json_values)
def test_events_never_5xx(api, items):
    r = api.post("/api/v1/events", content=json.dumps(items), headers={"Content-Type": "application/json"})
    check(r)
    if r.status_code == 200:
        assert set(r.json()) == {"accepted", "duplicates", "conflicts", "rejected"}


@fuzz(200)
@given(raw=st.binary(max_size=200), path=st.sampled_from(["/api/v1/events", "/v1/traces"]),
       ctype=st.sampled_from(["application/x-ndjson", "text/plain", "application/json", ""]))
def test_raw_bytes_never_5xx(api, raw, path, ctype):
    check(api.post(path, content=raw, headers={"Content-Type": ctype} if ctype else {}))
