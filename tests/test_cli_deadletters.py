"""`revwatch deadletters list|show|replay` against a running server (its API) and on the store itself (after the
server stopped and the mapping was fixed): a batch with a mapping error comes in once."""
import hashlib
import hmac
import json
import subprocess
import sys
import textwrap

import httpx

from tests.support.servers import free_port, revwatch_cmd, start_serve

CONFIG = """
store: {{dsn: 'chdb://{tmp}/data'}}
server: {{host: 127.0.0.1, port: {port}}}
spool: {{dir: '{tmp}/spool', flush_interval: 100ms}}
evaluator: {{enabled: false}}
sources:
  bus:
    preset: hmac
    secrets: [s3cret]
    mapping: {{events: items, type: kind, event_id: uid, correlation_id: {cid}, occurred_at: at}}
"""


def test_list_show_then_replay_after_the_mapping_is_fixed(tmp_path):
    port = free_port()
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(CONFIG.format(tmp=tmp_path, port=port, cid="ref"))
    admin = revwatch_cmd("keys", "create", "--scope", "admin", "--config", str(cfg)).stdout.strip().split()[-1]
    base = f"http://127.0.0.1:{port}"
    body = json.dumps({"items": [
        {"kind": "payment.settled", "uid": "u1", "ref": "p1", "at": "2026-01-01T00:00:00Z"},
        {"kind": "payment.settled", "uid": "u2", "order": "o2", "at": "2026-01-01T00:01:00Z"}]}).encode()
    sig = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    env = {"REVWATCH_API_KEY": admin}
    server = start_serve(cfg, base)
    try:
        r = httpx.post(f"{base}/api/v1/sources/bus", content=body, headers={"X-Signature": sig}, timeout=10)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        listed = None
        for _ in range(50):                                   # letters are flushed every second
            p = revwatch_cmd("deadletters", "list", "--json", "--config", str(cfg), env=env)
            assert p.returncode == 0, p.stderr
            listed = json.loads(p.stdout)["items"]
            if listed:
                break
        (letter,) = listed
        assert letter["source"] == "bus" and letter["reason"] == "mapping" and "item 1" in letter["detail"]
        p = revwatch_cmd("deadletters", "show", letter["id"], "--config", str(cfg), env=env)
        assert p.returncode == 0 and '"uid": "u2"' in p.stdout
        p = revwatch_cmd("deadletters", "list", "--since", "yesterday", "--config", str(cfg), env=env)
        assert p.returncode == 2 and "--since" in p.stderr and "Traceback" not in p.stderr
    finally:
        server.terminate()
        server.wait(30)
    cfg.write_text(CONFIG.format(tmp=tmp_path, port=port, cid="'ref || order'"))       # the fix
    p = revwatch_cmd("deadletters", "replay", "--source", "bus", "--json", "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["replayed"] == 1 and summary["letters"][0]["accepted"] == 1
    assert summary["letters"][0]["duplicates"] == 1
    p = revwatch_cmd("deadletters", "list", "--status", "open", "--json", "--config", str(cfg))
    assert json.loads(p.stdout)["items"] == []
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from revwatch.store import open_store
        s = open_store("chdb://{tmp_path}/data", "revwatch")
        print(s.query("SELECT groupArray(EventId), groupArray(CorrelationId) FROM "
                      "(SELECT * FROM revwatch.events ORDER BY EventId)").rows[0])
    """)], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "(['bus:u1', 'bus:u2'], ['p1', 'o2'])", out.stderr
