"""Issue #27: the three cases where the OpenAPI schema allowed what the server refused (found by schemathesis):
now the schema states the rule, and what it allows the server accepts."""
from __future__ import annotations

import datetime as dt

import pytest

jsonschema_rs = pytest.importorskip("jsonschema_rs")


def validator(api, component: str):
    doc = api.client.get("/openapi.json").json()
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{component}",
                                        "components": doc["components"]})


def cursor_schema(api) -> dict:
    params = api.client.get("/openapi.json").json()["paths"]["/api/v1/anomalies"]["get"]["parameters"]
    schema = next(p for p in params if p["name"] == "cursor")["schema"]
    return {"anyOf": [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]}


def test_silence_with_neither_end_is_outside_the_schema_and_refused(api):
    v = validator(api, "SilenceRequest")
    matchers = [{"name": "slo", "value": "pp"}]
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).isoformat()
    for body in ({"matchers": matchers, "endsAt": "", "duration": None},       # the case schemathesis found
                 {"matchers": matchers},
                 {"matchers": matchers, "endsAt": future, "duration": "2h"}):
        assert not v.is_valid(body), body
        r = api.post("/api/v1/silences", scope="admin", json=body)
        assert r.status_code == 400 and r.json()["field"] == "endsAt", r.text
    for body in ({"matchers": matchers, "endsAt": future, "duration": None},
                 {"matchers": matchers, "duration": "2h", "endsAt": ""},
                 {"matchers": matchers, "duration": "1d"}):
        assert v.is_valid(body), body
        assert api.post("/api/v1/silences", scope="admin", json=body).status_code == 200, body


def test_any_cursor_the_schema_allows_is_answered_and_others_are_400(api):
    v = jsonschema_rs.validator_for(cursor_schema(api))
    for bad in ("__main__", "garbage", "", "0" * 15, "0" * 17, "ABCDEF0123456789"):
        assert not v.is_valid(bad), bad
        r = api.get("/api/v1/anomalies", params={"cursor": bad})
        assert r.status_code == 400 and r.json()["field"] == "cursor", (bad, r.text)
    for good in ("0" * 16, "3fe0000000000000", "7ff8000000000000", "fff0000000000000ff",
                 "3fe0000000000000" + "rf_x".encode().hex()):
        assert v.is_valid(good), good
        r = api.get("/api/v1/anomalies", params={"cursor": good})
        assert r.status_code == 200 and r.json()["items"] == [], (good, r.text)


def test_empty_attribute_key_is_outside_the_schema_and_rejected(api):
    v = validator(api, "BusinessEvent")
    base = {"event_id": "k1", "type": "payment.settled", "correlation_id": "c", "source": "t",
            "occurred_at": "2026-11-23T10:00:00Z"}
    assert v.is_valid({**base, "attributes": {"a": "x"}})
    assert not v.is_valid({**base, "attributes": {"": "x"}})
    assert not v.is_valid({**base, "attributes": {"k" * 257: "x"}})
    r = api.post("/api/v1/events", json=[{**base, "attributes": {"": "x"}}])
    assert r.status_code == 400 and r.json()["rejected"][0]["field"] == "attributes"
    assert api.post("/api/v1/events", json=[{**base, "attributes": {"k" * 256: "x"}}]).json()["accepted"] == 1
