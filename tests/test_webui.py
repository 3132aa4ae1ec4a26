"""Web UI over HTTP (no browser): sign-in and session rules, CSRF and origin checks, kiosk mode, the data the
pages show (exhausted state, stuck money, CSV, series, burn attribution) against data put in the store."""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
import io
import time

import pytest

from anomaly.findings import acknowledge
from collector.rows import EVENT_COLUMNS, EventRow
from slo.attribution import attribute
from slo.history import bucket_series, burn_down
from tests.support.slo_data import add_events, add_spans, journey
from webui import charts
from revwatch.journeys import aging_bucket
from webui.data import journey_summaries, money_at_risk, stuck_items
from webui.session import Sessions, load_secret

CFG = """
journeys:
  p2p: {start: payment.settled, end: payment.posted}
slos:
  - {name: pp, journey: p2p, objective: 0.9, window: 7d, sli: {kind: journey_latency, threshold: 15m},
     alerting: {min_events: 1000}}
  - {name: api, objective: 0.99, window: 7d, sli: {kind: span_ratio, service: odoo, bad_when: {StatusCode: Error}}}
"""
NOW = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)


def _ev(cid, typ, at, amount=None, currency="", attrs=None, source="gw"):
    return list(EventRow(EventId=f"{cid}-{typ}", Type=typ, CorrelationId=cid, OccurredAt=int(at.timestamp() * 1000),
                         Source=source, Amount=amount, Currency=currency, Attributes=attrs or {}))


def seed_payments(store):
    """3 stuck payments (2 EUR, 1 USD), 1 on time, 1 late-but-posted."""
    rows = [_ev("late1", "payment.settled", NOW - dt.timedelta(hours=2), 100.5, "EUR", {"customer_id": "C-1",
                                                                                      "gateway": "stripe"}),
            _ev("late2", "payment.settled", NOW - dt.timedelta(days=2), 20, "EUR", {"customer_id": "C-2",
                                                                                  "gateway": "stripe"}),
            _ev("late3", "payment.settled", NOW - dt.timedelta(minutes=25), 7.25, "USD", {"customer_id": "=cmd|x",
                                                                                       "gateway": "adyen"}),
            _ev("ok1", "payment.settled", NOW - dt.timedelta(hours=3), 10, "EUR", {"customer_id": "C-3"}),
            _ev("ok1", "payment.posted", NOW - dt.timedelta(hours=3) + dt.timedelta(minutes=2), None, "", {}, "odoo"),
            _ev("slow1", "payment.settled", NOW - dt.timedelta(hours=5), 5, "EUR", {"customer_id": "C-4",
                                                                                  "gateway": "stripe"}),
            _ev("slow1", "payment.posted", NOW - dt.timedelta(hours=4), None, "", {}, "odoo")]
    store.insert("events", rows, EVENT_COLUMNS)


@pytest.fixture
def ui(api_factory):
    api = api_factory(CFG)
    seed_payments(api.ctx.store)
    api.ctx.slo.evaluate_and_cache()
    return api


def sign_in(api, scope="read"):
    r = api.client.post("/ui/login", data={"key": api.keys[scope], "next": "/ui/stuck"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/stuck"
    return r


def csrf_of(api) -> str:
    html = api.client.get("/ui/anomalies").text
    marker = 'name="csrf" value="'
    return html[html.index(marker) + len(marker):].split('"')[0]


def test_pages_need_a_session_and_sign_in_sets_a_safe_cookie(ui):
    c = ui.client
    for path in ("/", "/ui/", "/ui/slos/pp", "/ui/journeys", "/ui/stuck", "/ui/stuck.csv", "/ui/anomalies",
                 "/ui/alerts", "/ui/journeys/late1"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), path
    r = sign_in(ui)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Max-Age=43200" in cookie
    assert "samesite=strict" in cookie.lower()
    assert ui.keys["read"] not in cookie and ui.keys["read"].split("_")[2] not in cookie
    page = c.get("/ui/")
    assert page.status_code == 200 and "pp" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text                               # no inline script: CSP holds


def test_wrong_ingest_and_revoked_keys_are_refused(ui):
    c = ui.client
    r = c.post("/ui/login", data={"key": "rw_00000000_nope"}, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers and "unknown or revoked" in r.text
    r = c.post("/ui/login", data={"key": ui.keys["ingest"]}, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert c.post("/ui/login", data={"key": ""}, follow_redirects=False).status_code == 401
    sign_in(ui, "admin")
    assert c.get("/ui/", follow_redirects=False).status_code == 200
    ui.ctx.keys.revoke(ui.keys["admin"].split("_")[1])                # revoking the key ends its sessions
    r = c.get("/ui/", follow_redirects=False)
    assert r.status_code == 303 and "reason=revoked" in r.headers["location"]


def test_expired_and_tampered_sessions_are_refused():
    now = [1_800_000_000.0]
    s = Sessions("s" * 40, ttl_seconds=60, clock=lambda: now[0])
    value = s.issue("abcd1234", "read")
    v = s.read(value)
    assert v is not None and v.key_id == "abcd1234" and v.scope == "read" and len(v.csrf) >= 20
    assert s.read(value[:-2] + ("A" if value[-1] != "A" else "B") * 2) is None
    assert Sessions("t" * 40, 60, clock=lambda: now[0]).read(value) is None    # another installation's secret
    now[0] += 59
    assert s.read(value) is not None
    now[0] += 1
    assert s.read(value) is None                                      # past the TTL
    assert s.read(None) is None and s.read("garbage") is None


def test_secret_is_generated_once_and_persisted(tmp_path, monkeypatch):
    monkeypatch.delenv("REVWATCH_UI_SECRET", raising=False)
    a = load_secret(None, tmp_path)
    assert len(a) >= 32 and load_secret(None, tmp_path) == a
    assert (tmp_path / "ui-secret").stat().st_mode & 0o777 == 0o600
    assert load_secret("configured-secret", tmp_path) == "configured-secret"


def test_logout_and_acknowledge_need_the_csrf_token_and_same_origin(ui):
    c = ui.client
    store = ui.ctx.store
    store.insert("anomalies", [("f1", "billing_variance", NOW, "late1", "INV/1", 0.9, ["too much"], {}, "open")],
                 ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details", "Status"])
    sign_in(ui)
    token = csrf_of(ui)
    assert "Acknowledge</button>" not in c.get("/ui/anomalies").text   # a read key sees no button ...
    r = c.post("/ui/anomalies/f1/ack", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 403 and r.json()["field"] == "scope"      # ... and cannot acknowledge (as in the API)
    sign_in(ui, "admin")
    token = csrf_of(ui)
    r = c.post("/ui/anomalies/f1/ack", data={"csrf": "wrong"}, follow_redirects=False)
    assert r.status_code == 403 and r.json()["field"] == "csrf"
    r = c.post("/ui/anomalies/f1/ack", data={"csrf": token}, headers={"Origin": "https://evil.example"},
               follow_redirects=False)
    assert r.status_code == 403 and r.json()["field"] == "Origin"
    assert c.get("/ui/anomalies").text.count("Acknowledge</button>") == 1
    r = c.post("/ui/anomalies/f1/ack", data={"csrf": token, "next": "//evil.example/"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/anomalies"     # no open redirect
    assert "Acknowledge</button>" not in c.get("/ui/anomalies").text
    acked = c.get("/ui/anomalies?status=acknowledged").text
    assert "INV/1" in acked and f"by key {ui.keys['admin'].split('_')[1]}" in acked
    assert c.post("/ui/anomalies/nope/ack", data={"csrf": token}).status_code == 404
    assert c.post("/ui/logout", data={}, follow_redirects=False).status_code == 403
    r = c.post("/ui/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and 'revwatch_session=""' in r.headers["set-cookie"]


def test_acknowledge_keeps_the_finding_and_records_who(store):
    store.insert("anomalies", [("f2", "reconciliation_risk", NOW, "c", "PAY/1", 0.7, ["r"], {"a": "1"}, "open")],
                 ["Id", "Kind", "DetectedAt", "CorrelationId", "Ref", "Score", "Reasons", "Details", "Status"])
    assert acknowledge(store, "f2", by="k1")["status"] == "acknowledged"
    from anomaly.detectors import list_findings, open_counts
    (f,) = list_findings(store)
    assert f["status"] == "acknowledged" and f["details"]["acknowledged_by"] == "k1" and f["details"]["a"] == "1"
    # revwatch_anomalies_open counts acknowledged findings too: they are still open work until they resolve
    assert f["reasons"] == ["r"] and f["score"] == 0.7 and open_counts(store) == {"reconciliation_risk": 1}
    assert acknowledge(store, "missing", by="k1") is None


def test_bearer_key_reaches_pages_without_cookie_and_public_kiosk_is_read_only(api_factory):
    api = api_factory(CFG + "ui: {public: true}\n")
    c = api.client
    assert c.get("/ui/", follow_redirects=False).status_code == 200            # kiosk: no sign-in needed
    page = c.get("/ui/anomalies").text
    assert "public view" in page and "Sign out" not in page
    r = c.post("/ui/anomalies/x/ack", data={"csrf": ""})
    assert r.status_code == 403 and r.json()["field"] == "session"
    r = api.get("/ui/stuck", headers={})                                         # Bearer read key (proxy)
    assert r.status_code == 200 and "Sign out" in r.text
    assert c.get("/ui/", headers={"Authorization": "Bearer rw_00000000_x"}, follow_redirects=False).status_code == 303


def test_overview_shows_exhausted_budget_stuck_money_and_status(ui):
    sign_in(ui)
    html = ui.client.get("/ui/").text
    # pp: 2 decided-bad (slow1, late2 past 15 min… and late1/late3) of 5 instances -> budget of 10 % long gone
    assert "BUDGET EXHAUSTED" in html and 'class="badge st-ok"' not in html.split("pp</a>")[0].rsplit("<tr", 1)[1]
    assert "120.50 EUR" in html and "7.25 USD" in html                  # money at risk per currency
    (p2p,) = journey_summaries(ui.ctx)
    assert p2p["stuck"] == 3 and p2p["money"] == {"EUR": "120.50", "USD": "7.25"}          # exact decimal strings
    assert p2p["buckets"] == {"< 1 h": 1, "1–4 h": 1, "4–24 h": 0, "1–3 d": 1, "> 3 d": 0}
    assert p2p["stuck"] == len(stuck_items(ui.ctx, "p2p"))          # the summary and the list agree
    results = ui.ctx.slo.latest
    pp = next(r for r in results if r.spec.name == "pp")
    # one state for every reader (slo/state.py): the engine's result says what the page says
    assert pp.state == "exhausted" and pp.budget["remaining_ratio"] <= 0 and pp.budget["overspent"]
    assert "overspent by" in html.split("pp</a>")[1].split("</tr>")[0]
    api_res = next(r for r in results if r.spec.name == "api")
    assert api_res.state == "no_data" and "NO DATA" in html


def test_stuck_page_filters_and_csv_is_spreadsheet_safe(ui):
    sign_in(ui)
    c = ui.client
    html = c.get("/ui/stuck?journey=p2p").text
    assert html.index("late2") < html.index("late1") < html.index("late3")   # oldest first
    assert "ok1" not in html and "slow1" not in html
    assert "late1" not in c.get("/ui/stuck?journey=p2p&currency=USD").text
    assert "late3" not in c.get("/ui/stuck?journey=p2p&q=c-2").text
    assert "late2" in c.get("/ui/stuck?journey=p2p&bucket=1–3 d").text
    r = c.get("/ui/stuck.csv?journey=p2p")
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["correlation_id"] for x in rows] == ["late2", "late1", "late3"]
    assert rows[1]["amount"].startswith("100.5") and rows[1]["currency"] == "EUR" and rows[1]["customer"] == "C-1"
    assert rows[2]["customer"] == "'=cmd|x"                                 # no formula injection
    assert c.get("/ui/stuck?journey=nope").json()["field"] == "journey"
    assert money_at_risk(rows) == {"EUR": Decimal("120.50"), "USD": Decimal("7.25")}
    assert aging_bucket(dt.timedelta(minutes=59)) == "< 1 h" and aging_bucket(dt.timedelta(days=9)) == "> 3 d"


def test_journey_search_page_and_raw_json(ui):
    sign_in(ui)
    c = ui.client
    r = c.get("/ui/journeys?q=late1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/journeys/late1"
    page = c.get("/ui/journeys/late1").text
    assert "payment.settled" in page and "OVERDUE" in page and "100.50 EUR" in page
    raw = c.get("/ui/journeys/late1?format=json")
    assert raw.headers["content-type"] == "application/json" and raw.json()["correlation_id"] == "late1"
    r = c.get("/ui/journeys?q=C-1&by=customer_id", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/journeys/late1"
    assert c.get("/ui/journeys/nothing-here").status_code == 404
    assert "Nothing matches" in c.get("/ui/journeys?q=nothing-here").text


def test_slo_page_series_and_breakdown(ui):
    sign_in(ui)
    c = ui.client
    page = c.get("/ui/slos/pp?range=24h")
    assert page.status_code == 200 and page.text.count('<svg class="chart"') == 3
    assert "stuck after payment.settled" in page.text
    assert c.get("/ui/slos/pp?range=1y").json()["field"] == "range"
    assert c.get("/ui/slos/nope").status_code == 404
    spec = ui.ctx.slo.spec("pp")
    series = bucket_series(ui.ctx.store, [spec], NOW - dt.timedelta(hours=24), NOW + dt.timedelta(minutes=1),
                           dt.timedelta(hours=1))
    buckets = series.of("pp", "")
    assert len(buckets) in (25, 26) and all(b.start.minute == 0 for b in buckets)
    # the rollup says what the engine says: the series sums to the engine's 1d window (rollup minutes only)
    day = next(r for r in ui.ctx.slo.latest if r.spec.name == "pp").windows["1d"]
    assert sum(b.total for b in buckets) == day.total and sum(b.good for b in buckets) == day.good
    down = burn_down(buckets, 0.9)
    assert down[-1] == pytest.approx(1 - (day.total - day.good) / (0.1 * day.total))
    # the page's "where the bad instances come from" is the burn attribution (slo/attribution.py) of the range
    att = attribute(ui.ctx.slo, spec, "", now=NOW + dt.timedelta(minutes=1), lookback=dt.timedelta(days=3))
    assert att["instances"]["started"] == 5 and att["instances"]["bad"] == 4
    assert [(s["step"], s["after"], s["stuck"], s["late"]) for s in att["steps"]] == \
        [("payment.posted", "payment.settled", 3, 1)]
    assert "late at payment.posted" in page.text and att["failing_system"] == "gw"
    assert att["money_bad"] == {"EUR": "125.50", "USD": "7.25"}        # late1 + late2 + slow1; late3
    # stripe is 3 of the 4 bad but also 3 of the 5 started (lift 1.25 < 1.5): not over-represented
    assert att["over_represented"] == []
    assert {x["correlation_id"] for x in att["oldest_stuck"]} == {"late1", "late2", "late3"}


def test_span_attribution_by_service_and_span_name(ui):
    add_spans(ui.ctx.store, NOW - dt.timedelta(minutes=30), minutes=10, per_minute=6, errors_per_minute=2)
    spec = ui.ctx.slo.spec("api")
    att = attribute(ui.ctx.slo, spec, "", now=NOW, lookback=dt.timedelta(hours=1))
    assert att["spans"]["total"] == 60 and att["spans"]["bad"] == 20
    assert att["steps"] == [{"step": "execute_kw", "bad": 20}] and att["failing_system"] == "odoo"


def test_docs_and_assets_are_local(ui):
    c = ui.client
    html = c.get("/docs").text
    assert "/ui/static/swagger/swagger-ui-bundle.js" in html and "cdn" not in html.lower() and "http" not in html
    assert c.get("/ui/static/swagger/swagger-ui-bundle.js").status_code == 200
    assert c.get("/ui/static/swagger/index.html").status_code == 404            # only the files /docs needs
    assert c.get("/ui/static/app.css").headers["content-type"].startswith("text/css")
    assert c.get("/ui/static/..%2Froutes.py").status_code == 404
    assert c.get("/redoc").status_code == 404


def test_charts_escape_and_draw_gaps():
    svg = str(charts.sparkline([1.0, None, 3.0], "<x>", alert_at=2.0))
    assert "&lt;x&gt;" in svg and svg.count("M") == 2 and 'class="thr"' in svg
    line = str(charts.line_chart([NOW, NOW + dt.timedelta(hours=1)], {"a": [0.5, 1.0]}, "t",
                                 lines=(charts.Line(0.9, "<obj>"),)))
    assert "&lt;obj&gt;" in line and "<path" in line
    assert 'class="bar exhausted"' in str(charts.budget_bar(-0.5))
    assert "42.0% left" in str(charts.budget_bar(0.42))
    spans = [{"at": "2026-01-01T00:00:00Z", "duration_ms": 100.0, "name": "root", "system": "odoo", "error": False,
              "trace_id": "t", "span_id": "a", "parent_span_id": None},
             {"at": "2026-01-01T00:00:00.050Z", "duration_ms": 20.0, "name": "child", "system": "odoo", "error": True,
              "trace_id": "t", "span_id": "b", "parent_span_id": "a", "status_message": "<boom>"},
             {"at": "2026-01-01T00:00:00.060Z", "duration_ms": 5.0, "name": "grandchild", "system": "pg",
              "error": False, "trace_id": "t", "span_id": "c", "parent_span_id": "b"}]
    assert charts._depths(spans) == [0, 1, 2]
    wf = str(charts.waterfall(spans))
    assert 'class="wf-err"' in wf and "&lt;boom&gt;" in wf and 'x="20"' in wf


def test_journey_helper_events_show_up_in_search(ui):
    journey(ui.ctx.store, "p-extra", NOW - dt.timedelta(minutes=5), None, {"invoice_ref": "INV/9"})
    add_events(ui.ctx.store, [("invoice.created", "inv-9", NOW - dt.timedelta(minutes=6), {"invoice_ref": "INV/9"})])
    sign_in(ui)
    html = ui.client.get("/ui/journeys?q=INV/9").text
    assert "p-extra" in html and "inv-9" in html and "invoice_ref" in html


def test_a_rescan_keeps_an_acknowledged_finding_acknowledged(api_factory):
    from revwatch.sim.demo import DEMO_CONFIG
    from revwatch.sim.faults import parse_fault
    from revwatch.sim.model import Business
    from anomaly.detectors import list_findings, scan
    from collector.rowcodec import event_rows_for_insert
    from collector.events import EVENT_COLUMNS, validate_event
    api = api_factory(DEMO_CONFIG)
    start = NOW - dt.timedelta(hours=8)
    b = Business(2, start, 60, 60.0, [parse_fault("price_misconfig@day1+1h/4h", start, NOW)])
    events, _ = b.advance(NOW)
    api.ctx.store.insert("events", event_rows_for_insert([validate_event(e)[0] for e in events]), EVENT_COLUMNS)
    scan(api.ctx.store)
    first = list_findings(api.ctx.store)
    assert first and all(f["status"] == "open" for f in first)
    acknowledge(api.ctx.store, first[0]["id"], by="k9")
    time.sleep(0.01)                 # the re-scan is versioned by the store's clock (now64): a later ms than the ack
    scan(api.ctx.store)
    again = {f["id"]: f for f in list_findings(api.ctx.store)}
    assert again[first[0]["id"]]["status"] == "acknowledged"
    assert again[first[0]["id"]]["details"]["acknowledged_by"] == "k9"
    assert all(f["status"] == "open" for i, f in again.items() if i != first[0]["id"])


def test_alert_impact_reads_as_money_and_percent():
    from webui.format import impact
    assert impact("{'EUR': '24829.00', 'USD': '7.5'}", "amount_at_risk") == "24,829.00 EUR, 7.50 USD"
    assert impact("-10.534", "budget_remaining_ratio") == "-1053.4%"
    assert impact("None", "days_until_exhausted") == "never" and impact("0.0", "days_until_exhausted") == "now"
    assert impact("not a dict", "amount_at_risk") == "not a dict" and impact("42", "stuck_instances") == "42"
    from webui.format import duration
    assert [duration(x) for x in (900, 3600, 3725, 90061, 2.5, None)] == ["15 m", "1 h", "1 h 2 m", "1 d 1 h",
                                                                         "2.5 s", "–"]


def test_the_key_typed_into_the_form_is_never_logged(ui, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    sign_in(ui)
    ui.client.post("/ui/login", data={"key": ui.keys["read"] + "x"})
    ui.client.get("/ui/")
    secret = ui.keys["read"].split("_")[2]
    assert secret not in caplog.text


def test_overview_degrades_one_panel_when_the_store_fails_it(ui, monkeypatch):
    from revwatch.store import StoreError
    from webui import data

    def down(*_a, **_k):
        raise StoreError("connection refused")
    monkeypatch.setattr(data, "open_alerts", down)
    monkeypatch.setattr(data, "anomalies", down)
    sign_in(ui)
    r = ui.client.get("/ui/")
    assert r.status_code == 200 and "alert log is unavailable" in r.text and "Anomalies are unavailable" in r.text
    assert "pp</a>" in r.text                                          # the SLOs still show


def test_every_ui_page_declares_the_read_scope_for_route_tables(ui):
    from fastapi.routing import APIRoute
    pages = {r.path: [getattr(d.call, "scope", None) for d in r.dependant.dependencies]
             for r in ui.client.app.routes if isinstance(r, APIRoute) and (r.path.startswith("/ui") or r.path == "/")}
    open_paths = {"/ui/login", "/ui/logout", "/ui/static/{name}", "/ui/static/swagger/{name}"}
    for path, scopes in pages.items():
        assert ("read" in scopes) == (path not in open_paths), path
