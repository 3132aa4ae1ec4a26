"""The OpenAPI document says what the server does: a bounded schemathesis run (every check, each scope's key)
against a live server passes, and the document's facts (bodies, status codes, media types, scopes) are checked
directly so a regression names itself."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from revwatch.openapi import BusinessEvent, route_scopes
from tests.support.servers import live_server

CFG = """
journeys:
  payment_to_posting: {start: payment.settled, end: payment.posted}
slos:
  - {name: payment-posting-15m, journey: payment_to_posting, objective: 0.995, window: 7d,
     sli: {kind: journey_latency, threshold: 15m}}
"""
ST = Path(sys.executable).with_name("st")


@pytest.fixture
def api(api_factory):
    return api_factory(CFG)


def test_document_has_bodies_real_statuses_and_media_types(api):
    doc = api.client.get("/openapi.json").json()
    paths = doc["paths"]
    assert "422" not in str({p: {m: op["responses"] for m, op in ops.items()} for p, ops in paths.items()})
    events = paths["/api/v1/events"]["post"]
    assert {"200", "400", "401", "403", "413", "415", "503"} <= set(events["responses"])
    schema = doc["components"]["schemas"]["BusinessEvent"]
    assert set(schema["required"]) == {"event_id", "type", "correlation_id", "occurred_at", "source"}
    assert schema["properties"]["amount"]["anyOf"][0]["pattern"]
    assert "application/x-ndjson" in events["requestBody"]["content"]
    assert set(paths["/v1/traces"]["post"]["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
    assert "429" in paths["/v1/traces"]["post"]["responses"]
    assert "AlertmanagerWebhook" in str(paths["/api/v1/alerts/alertmanager"]["post"]["requestBody"])
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert "404" in paths["/api/v1/journeys/{correlation_id}"]["get"]["responses"]
    assert "security" not in paths["/healthz"]["get"] and paths["/api/v1/slos"]["get"]["security"]
    assert "Needs a key with scope `admin`" in paths["/api/v1/anomalies/scan"]["post"]["description"]


def test_scopes_are_the_documented_ones(api):
    scopes = route_scopes(api.client.app)
    assert scopes[("POST", "/api/v1/alerts/alertmanager")] == "ingest"
    assert scopes[("POST", "/api/v1/anomalies/scan")] == "admin"
    assert scopes[("GET", "/metrics")] == "read" and scopes[("GET", "/healthz")] is None
    docs = (Path(__file__).parents[1] / "docs" / "http.md").read_text()
    for (method, path), scope in scopes.items():
        assert f"| {method} | `{path}` | {scope or 'none'} |" in docs, (method, path, scope)


def test_the_event_model_matches_the_validator():
    from collector.events import validate_event
    example = BusinessEvent.model_config["json_schema_extra"]["examples"][0]
    row, error, _ = validate_event(example)
    assert error is None and row[6] == "129.00"
    for bad in ({**example, "amount": 129}, {**example, "occurred_at": "1969-12-31T23:59:59Z"},
                {**example, "extra": 1}, {**example, "type": "Payment"}):
        assert validate_event(bad)[0] is None


def test_405_names_every_method_of_the_path(api):
    r = api.client.request("PUT", "/api/v1/keys", headers=api.auth("admin"))
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}


@pytest.mark.skipif(not ST.exists(), reason="schemathesis not installed (pip install -e '.[test]')")
def test_schemathesis_all_checks_pass_with_each_scopes_key(api, tmp_path):
    """One bounded run per scope (every check, all phases), the three side by side against one live server."""
    runs = {}
    with live_server(api.client.app) as base:
        for scope in ("ingest", "read", "admin"):
            work = tmp_path / scope
            work.mkdir()
            runs[scope] = subprocess.Popen(
                [str(ST), "--config-file", str(Path(__file__).parent / "fixtures" / "schemathesis.toml"), "run",
                 f"{base}/openapi.json", "--checks", "all",
                 "-H", f"Authorization: Bearer {api.keys[scope]}", "--max-examples", "5", "--seed", "1",
                 "--no-shrink", "--workers", "1",   # CPython 3.11 ast.parse is not thread-safe (hypothesis)
                 "--suppress-health-check", "filter_too_much", "--max-failures", "5", "--report-dir", str(work)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work,
                env={**os.environ, "NO_COLOR": "1"})
        outputs = {scope: p.communicate(timeout=400)[0] for scope, p in runs.items()}
    for scope, p in runs.items():
        tail = outputs[scope][-3000:]
        assert p.returncode == 0, (scope, outputs[scope][-12000:])   # the whole report: which check, which case
        assert " passed" in tail and "failure" not in tail.split("Test cases:")[-1], (scope, tail)
