"""Journey lookup for incident responders: ordering across systems, milestones, overdue, errors, links, search."""
import datetime as dt
import json

from collector.rows import SPAN_COLUMNS, SpanRow
from tests.support.servers import revwatch_cmd
from tests.support.slo_data import add_events

M = dt.timedelta(minutes=1)
CFG = """
journeys:
  p2p: {start: payment.settled, end: payment.posted, milestones: [payment.received_by_odoo]}
  r2i: {start: subscription.renewed, end: invoice.posted}
slos:
  - {name: pp, journey: p2p, objective: 0.99, window: 1d, sli: {kind: journey_latency, threshold: 15m}}
"""


def now_ms():
    """Now, at the millisecond precision events are stored with."""
    t = dt.datetime.now(dt.timezone.utc)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def span(store, cid, trace, span_id, name, service, at, status="Ok", parent="", dur_ms=120, attrs=None):
    ns = int(at.timestamp() * 1e9)
    row = SpanRow(Timestamp=ns, TraceId=trace, SpanId=span_id, ParentSpanId=parent, SpanName=name, SpanKind="Server",
                  ServiceName=service, SpanAttributes=attrs or {}, Duration=dur_ms * 10**6, StatusCode=status,
                  StatusMessage="boom" if status == "Error" else "", CorrelationId=cid)
    store.insert("spans", [list(row)], SPAN_COLUMNS)


def seed(api, now):
    s = api.ctx.store
    add_events(s, [("payment.received", "pay_1", now - 40 * M, {"invoice_ref": "INV/1", "customer_id": "C-1"}),
                   ("payment.settled", "pay_1", now - 30 * M, {"invoice_ref": "INV/1", "customer_id": "C-1"}),
                   ("webhook.failed", "pay_1", now - 29 * M, {}),
                   ("invoice.posted", "ren_9", now - 90 * M, {"invoice_ref": "INV/1", "customer_id": "C-1"}),
                   ("subscription.renewed", "ren_9", now - 100 * M, {"customer_id": "C-1"}),
                   ("payment.settled", "pay_2", now - 10 * M, {"customer_id": "C-2"}),
                   ("payment.settled", "pay_3", now - 50 * M, {"customer_id": "C-3"}),
                   ("payment.posted", "pay_3", now - 45 * M, {"customer_id": "C-3"})])
    t1 = "a" * 32
    span(s, "pay_1", t1, "1" * 16, "POST /v1/charges", "stripe", now - 40 * M + dt.timedelta(seconds=1))
    span(s, t1, t1, "2" * 16, "odoo.execute_kw", "odoo", now - 29 * M + dt.timedelta(seconds=1), status="Error",
         parent="1" * 16)


def test_timeline_order_systems_milestones_overdue_errors(api_factory):
    api = api_factory(CFG)
    now = now_ms()
    seed(api, now)
    doc = api.ctx.journeys.lookup("pay_1", now=now)
    names = [x["name"] for x in doc["timeline"]]
    assert names == ["payment.received", "POST /v1/charges", "payment.settled", "webhook.failed", "odoo.execute_kw"]
    assert [x["system"] for x in doc["timeline"]] == ["test", "stripe", "test", "test", "odoo"]
    assert doc["systems"]["stripe"]["index"] == [1] and doc["systems"]["odoo"]["errors"] == 1
    (j,) = doc["journeys"]
    assert j["journey"] == "p2p" and j["status"] == "overdue"
    assert [m["type"] for m in j["milestones"]] == ["payment.settled", "payment.received_by_odoo", "payment.posted"]
    end = j["milestones"][-1]
    assert not end["reached"] and end["waiting_seconds"] == 1800 and end["overdue_seconds"] == 900
    assert j["missing"] == ["payment.received_by_odoo", "payment.posted"]
    assert {e["name"] for e in doc["errors"]} == {"webhook.failed", "odoo.execute_kw"}
    rel = {r["attribute"]: r for r in doc["related"]}
    assert rel["invoice_ref"]["correlation_ids"] == ["ren_9"]          # hop from payment to invoice
    assert set(rel["customer_id"]["correlation_ids"]) == {"ren_9"}


def test_completed_journey_lags(api_factory):
    api = api_factory(CFG)
    now = now_ms()
    seed(api, now)
    (j,) = api.ctx.journeys.lookup("pay_3", now=now)["journeys"]
    assert j["status"] == "completed" and j["total_seconds"] == 300 and j["within_threshold"]
    assert j["milestones"][-1]["lag_seconds"] == 300
    ren = api.ctx.journeys.lookup("ren_9", now=now)["journeys"]
    assert [x["journey"] for x in ren] == ["r2i"] and ren[0]["total_seconds"] == 600


def test_lookup_by_trace_id_finds_spans_stored_under_another_id(api_factory):
    api = api_factory(CFG)
    now = now_ms()
    seed(api, now)
    doc = api.get("/api/v1/journeys/" + "a" * 32).json()
    assert sorted(x["name"] for x in doc["timeline"]) == ["POST /v1/charges", "odoo.execute_kw"]


def test_api_404_scope_and_search(api_factory):
    api = api_factory(CFG)
    now = now_ms()
    seed(api, now)
    api.drain()
    r = api.get("/api/v1/journeys/nope_404")
    assert r.status_code == 404 and r.json()["field"] == "correlation_id" and "nope_404" in r.json()["error"]
    assert api.get("/api/v1/journeys/pay_1", scope="ingest").status_code == 403
    assert api.client.get("/api/v1/journeys/pay_1").status_code == 401
    found = api.get("/api/v1/journeys", params={"attr": "invoice_ref:INV/1"}).json()["items"]
    assert {x["correlation_id"] for x in found} == {"pay_1", "ren_9"}
    assert {x["correlation_id"] for x in api.get("/api/v1/journeys", params={"customer": "C-3"}).json()["items"]} \
        == {"pay_3"}
    window = {"journey": "p2p", "since": (now - 35 * M).isoformat(), "until": now.isoformat()}
    assert {x["correlation_id"] for x in api.get("/api/v1/journeys", params=window).json()["items"]} == \
        {"pay_1", "pay_2"}
    stuck = api.get("/api/v1/journeys", params={"stuck": "p2p"}).json()["items"]
    assert [x["correlation_id"] for x in stuck] == ["pay_1"]           # pay_2 is within its 15 minutes
    assert stuck[0]["overdue_seconds"] > 890
    assert api.get("/api/v1/journeys", params={"attr": "novalue"}).json()["field"] == "attr"
    assert api.get("/api/v1/journeys", params={"stuck": "nope"}).status_code == 400
    recent = api.get("/api/v1/journeys").json()["items"]               # no filter: the last day, newest first
    assert {"pay_1", "pay_2", "pay_3", "ren_9"} <= {x["correlation_id"] for x in recent}
    assert api.get("/api/v1/journeys", params={"stuck": "p2p", "since": "x"}).json()["field"] == "since"
    assert api.get("/api/v1/journeys", params={"since": "2026-01-01"}).json()["field"] == "since"


def test_cli_trace_json_and_timeline(tmp_path):
    import subprocess
    import sys
    import textwrap
    cfg = tmp_path / "rw.yaml"
    cfg.write_text(f"store: {{dsn: 'chdb://{tmp_path}/data'}}\n" + CFG)
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import datetime as dt
        from revwatch.store import open_store
        from tests.support.slo_data import add_events
        s = open_store("chdb://{tmp_path}/data", "revwatch")
        now = dt.datetime.now(dt.timezone.utc)
        add_events(s, [("payment.settled", "pay_9", now - dt.timedelta(minutes=20)),
                       ("payment.posted", "pay_9", now - dt.timedelta(minutes=18))])
    """)], check=True, timeout=60)
    r = revwatch_cmd("trace", "pay_9", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["correlation_id"] == "pay_9" and doc["journeys"][0]["status"] == "completed"
    r = revwatch_cmd("trace", "pay_9", "--config", str(cfg))
    assert "journey p2p: completed" in r.stdout and "payment.posted" in r.stdout
    r = revwatch_cmd("trace", "missing", "--config", str(cfg))
    assert r.returncode == 1 and "nothing is recorded" in r.stderr
