"""UI security (issue #26): the read gate believes only valid sessions, signing out kills a copied cookie on the
server, and X-Forwarded-* counts only from configured trusted proxies."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from revwatch.config import ConfigError
from revwatch.server import _credentialed_by, create_app
from webui.session import COOKIE, Revocations, Sessions
from tests.test_webui import CFG, csrf_of, sign_in


def _headers(cookie: str) -> dict:
    return {"type": "http", "headers": [(b"cookie", cookie.encode())]}


def test_the_read_gate_counts_only_signed_unexpired_live_sessions(api_factory):
    api = api_factory(CFG)
    credentialed = _credentialed_by(api.ctx)
    # any cookie merely *named* revwatch_session used to count, so forged ones filled the 64 waiting places
    for forged in (f"{COOKIE}=x", f"{COOKIE}=eyJrIjoiYWJjIn0.forged", f"other=1; {COOKIE}=", "x=revwatch_session"):
        assert not credentialed(_headers(forged)), forged
    sign_in(api)
    value = api.client.cookies[COOKIE]
    assert credentialed(_headers(f"theme=dark; {COOKIE}={value}"))
    expired = Sessions(api.ctx.ui.sessions._ser.secret_key.decode(), 60, clock=lambda: 0.0).issue("abcd1234", "read")
    assert not credentialed(_headers(f"{COOKIE}={expired}"))          # validly signed but long expired
    api.client.post("/ui/logout", data={"csrf": csrf_of(api)}, follow_redirects=False)
    assert not credentialed(_headers(f"{COOKIE}={value}"))            # signed out: no longer a reader


def test_sign_out_ends_the_session_on_the_server_so_a_copied_cookie_dies(api_factory):
    api = api_factory(CFG)
    c = api.client
    sign_in(api)
    stolen = c.cookies[COOKIE]
    thief = TestClient(c.app, cookies={COOKIE: stolen})
    assert thief.get("/ui/", follow_redirects=False).status_code == 200
    r = c.post("/ui/logout", data={"csrf": csrf_of(api)}, follow_redirects=False)
    assert r.status_code == 303
    r = thief.get("/ui/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    # durable: another process (a fresh revocation list over the same store) refuses it too
    other = Sessions(api.ctx.ui.sessions._ser.secret_key.decode(), 3600, Revocations(api.ctx.store))
    assert other.read(stolen) is None
    sign_in(api)                                                      # a new sign-in is a new, live session
    assert c.get("/ui/", follow_redirects=False).status_code == 200


def test_a_sessions_scope_follows_its_key_and_read_keys_cannot_acknowledge(api_factory):
    api = api_factory(CFG)
    sign_in(api)
    r = api.client.post("/ui/anomalies/any/ack", data={"csrf": csrf_of(api)}, follow_redirects=False)
    assert r.status_code == 403 and r.json() == {"error": r.json()["error"], "field": "scope"}
    r = api.client.post("/ui/anomalies/any/ack", headers={"Authorization": f"Bearer {api.keys['read']}"})
    assert r.status_code == 403 and r.json()["field"] == "scope"   # a read Bearer key neither
    r = api.client.post("/ui/anomalies/any/ack", headers={"Authorization": f"Bearer {api.keys['admin']}"})
    assert r.status_code == 404                                      # admin may: the finding does not exist


@pytest.mark.parametrize("trusted, peer, secure", [
    (None, "10.1.2.3", False),                 # nobody trusted: X-Forwarded-Proto from anyone is ignored
    (["10.0.0.0/8"], "192.168.1.9", False),    # not from a trusted proxy
    (["10.0.0.0/8"], "10.1.2.3", True),        # the configured proxy says the browser used HTTPS
])
def test_secure_cookie_believes_x_forwarded_proto_only_from_trusted_proxies(make_config, trusted, peer, secure):
    cfg = make_config(CFG + (f"server: {{trusted_proxies: {trusted}}}\n" if trusted else ""))
    app = create_app(cfg, start_background=False)
    key = app.state.ctx.keys.create("read")[0]
    with TestClient(app, client=(peer, 40000)) as c:
        r = c.post("/ui/login", data={"key": key}, headers={"X-Forwarded-Proto": "https",
                                                             "X-Forwarded-For": "203.0.113.7"},
                   follow_redirects=False)
    assert r.status_code == 303
    assert ("secure" in r.headers["set-cookie"].lower().split("; ")) is secure


def test_trusted_proxies_must_be_addresses_or_networks(make_config):
    with pytest.raises((ConfigError, ValueError)) as e:
        make_config(CFG + "server: {trusted_proxies: [proxy.local]}\n")
    assert "trusted_proxies" in str(e.value)


def test_serve_does_not_let_uvicorn_believe_forwarded_headers_itself(make_config, monkeypatch):
    import uvicorn
    from revwatch import server
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    server.serve(make_config(CFG))
    assert seen["proxy_headers"] is False
