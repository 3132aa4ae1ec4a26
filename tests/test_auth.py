"""Scoped API keys: 401 without, 403 with the wrong scope, 200 with the right one, revocation, hashing."""
import logging

import pytest

from revwatch.auth import KeyStore


def test_no_key_is_401_with_json_body(api):
    r = api.client.get("/api/v1/slos")
    assert r.status_code == 401
    assert r.json()["field"] == "Authorization" and "Bearer" in r.json()["error"]
    assert api.client.get("/api/v1/slos", headers={"Authorization": "Bearer rw_00000000_nope"}).status_code == 401
    assert api.client.get("/api/v1/slos", headers={"Authorization": "Basic abc"}).status_code == 401


@pytest.mark.parametrize("method, path, scope, wrong", [
    ("GET", "/api/v1/slos", "read", "ingest"),
    ("POST", "/api/v1/events", "ingest", "read"),
    ("POST", "/v1/traces", "ingest", "read"),
    ("GET", "/api/v1/keys", "admin", "read"),
    ("GET", "/metrics", "read", "ingest"),
])
def test_scopes(api, method, path, scope, wrong):
    body = b"{}" if path == "/v1/traces" else b"[]"
    kw = {"content": body, "headers": {"Content-Type": "application/json"}} if method == "POST" else {}
    hdr = kw.pop("headers", {})
    wrong_r = api.client.request(method, path, headers={**hdr, **api.auth(wrong)}, **kw)
    assert wrong_r.status_code == 403 and scope in wrong_r.json()["error"]
    right = api.client.request(method, path, headers={**hdr, **api.auth(scope)}, **kw)
    assert right.status_code < 400 or (path == "/api/v1/events" and right.status_code == 400), right.text
    admin = api.client.request(method, path, headers={**hdr, **api.auth("admin")}, **kw)
    assert admin.status_code != 403                     # admin grants every scope


def test_health_needs_no_key(api):
    assert api.client.get("/healthz").status_code == 200
    r = api.client.get("/readyz")
    assert r.status_code == 200 and r.json()["store"] == "ok"


def test_revoked_key_is_refused(api):
    token, key = api.ctx.keys.create("read", "temp")
    assert api.client.get("/api/v1/slos", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    r = api.client.delete(f"/api/v1/keys/{key.key_id}", headers=api.auth("admin"))
    assert r.status_code == 200
    assert api.client.get("/api/v1/slos", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    listed = {k["id"]: k for k in api.get("/api/v1/keys", scope="admin").json()["keys"]}
    assert listed[key.key_id]["revoked"] == 1


def test_keys_are_stored_hashed_and_never_logged(api, caplog):
    caplog.set_level(logging.DEBUG)
    r = api.client.post("/api/v1/keys", json={"scope": "ingest"}, headers=api.auth("admin"))
    token = r.json()["key"]
    assert api.client.post("/api/v1/events", content=b"[]", headers={"Authorization": f"Bearer {token}"}).status_code \
        in (200, 400)
    rows = api.ctx.store.query(f"SELECT Hash FROM {api.ctx.store.table('api_keys')}").rows
    assert all(token not in h and len(h) == 64 for (h,) in rows)
    dump = str(api.ctx.store.query(f"SELECT * FROM {api.ctx.store.table('api_keys')}").rows)
    assert token not in dump
    assert token not in caplog.text
    for t in api.keys.values():
        assert t not in caplog.text


def test_bad_scope_on_create(api):
    r = api.client.post("/api/v1/keys", json={"scope": "root"}, headers=api.auth("admin"))
    assert r.status_code == 400 and r.json()["field"] == "scope"
    with pytest.raises(ValueError):
        KeyStore(api.ctx.store).create("root")


def test_json_logs_carry_correlation_ids_not_keys(api, capsys):
    import json as _json
    from revwatch.logs import setup_logging
    setup_logging(verbose=True, fmt="json")
    try:
        api.post("/api/v1/events", json=[{"event_id": "e-log", "type": "payment.settled", "correlation_id": "pay_log",
                                          "occurred_at": "2026-11-23T10:00:00Z", "source": "s"}, {"type": "bad"}])
    finally:
        logging.getLogger().handlers.clear()
    lines = [_json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    accepted = [x for x in lines if x["message"] == "event accepted"]
    assert accepted and accepted[0]["correlation_id"] == "pay_log" and accepted[0]["key_id"]
    assert any(x["message"] == "event rejected" and x["index"] == 1 for x in lines)
    text = "\n".join(_json.dumps(x) for x in lines)
    assert all(k not in text for k in api.keys.values())
