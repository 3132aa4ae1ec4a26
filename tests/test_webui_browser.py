"""The web UI in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright's Python package.

One simulated business (12 h, a posting backlog in the last 50 minutes, a mispriced plan, CRM sync errors) goes
through the real HTTP/OTLP path into a live server; then a person signs in, opens every page (no console errors,
no page wider than a phone), finds a journey by correlation ID and by invoice reference, walks from the overview
to a stuck payment's timeline in under three clicks, acknowledges an anomaly, and is refused with a wrong key, an
expired or forged cookie, and a POST without its CSRF token. Screenshots of every page are written to
tests/output/webui/ (or $REVWATCH_TEST_OUTPUT). Bounded: one browser, one data set, about a minute.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from anomaly.detectors import scan
from revwatch.config import Config
from revwatch.server import create_app
from revwatch.sim.demo import DEMO_CONFIG
from revwatch.sim.faults import parse_fault
from revwatch.sim.model import Business
from revwatch.sim.sender import Sender
from tests.support.servers import live_server
from tests.support.tools import missing

try:
    import playwright.sync_api as playwright_api
except ImportError:
    missing("the playwright package is not installed (pip install -e '.[test]')", module_level=True)
CHROMIUM = os.environ.get("REVWATCH_CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    missing(f"{CHROMIUM} is missing (make test installs Debian's chromium)", module_level=True)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = Path(os.environ.get("REVWATCH_TEST_OUTPUT", Path(__file__).parent / "output")) / "webui"
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(chdb_dsn, tmp_path_factory):
    """A live server with 12 simulated hours in it; yields (base URL, keys, app context, facts)."""
    tmp = tmp_path_factory.mktemp("webui")
    raw = yaml.safe_load(DEMO_CONFIG)
    raw.update(data_dir=str(tmp), store={"dsn": chdb_dsn, "database": f"ui_{int(time.time() * 1000) % 10**9}"},
               spool={"dir": str(tmp / "spool"), "flush_interval": "50ms"}, evaluator={"enabled": False},
               ui={"refresh": "5s"})
    cfg = Config.model_validate(raw)
    app = create_app(cfg)
    ctx = app.state.ctx
    keys = {s: ctx.keys.create(s, "browser test")[0] for s in ("ingest", "read", "admin")}
    end = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    start = end - dt.timedelta(hours=12)
    faults = [parse_fault(f, start, end) for f in ("posting_delay@-50m/50m", "price_misconfig@day1+2h/3h",
                                                   "crm_sync_errors@day1+1h/2h:rate=0.5")]
    business = Business(11, start, 120, 90.0, faults)
    with live_server(app) as base:
        sender = Sender(base, keys["ingest"], seed=11)
        events, spans = business.advance(end)
        sender.events(events)
        sender.spans(spans)
        sender.close()
        assert ctx.writer.wait_drained(60)
        ctx.slo.evaluate_and_cache()
        scan(ctx.store)
        import httpx
        r = httpx.post(f"{base}/api/v1/alerts/alertmanager", headers={"Authorization": f"Bearer {keys['ingest']}"},
                       json={"version": "4", "status": "firing", "receiver": "revwatch", "alerts": [
                           {"status": "firing", "labels": {"alertname": "SLOErrorBudgetBurn", "severity": "page",
                                                           "slo": "payment-posting-15m"},
                            "annotations": {"summary": "payments are not being posted"},
                            "startsAt": (end - dt.timedelta(minutes=20)).isoformat().replace("+00:00", "Z")}]})
        assert r.status_code == 200, r.text
        invoice = next(e for e in events if e["type"] == "invoice.created")
        facts = {"cid": invoice["correlation_id"], "invoice_ref": invoice["attributes"]["invoice_ref"],
                 "stuck": ctx.journeys.stuck("payment_to_posting")}
        assert facts["stuck"], "the posting backlog left no stuck payment"
        yield base, keys, ctx, facts


@pytest.fixture(scope="module")
def browser():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


class Session:
    """A browser context that records console errors and failed requests of every page it opens."""

    def __init__(self, browser, base: str, viewport=DESKTOP):
        self.base = base
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))

    def go(self, path: str):
        resp = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return resp

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)

    def sign_in(self, key: str) -> None:
        self.go("/ui/login")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@contextlib.contextmanager
def signed_in(browser, base: str, key: str, viewport=DESKTOP):
    """A session signed in with `key`; on leaving, no page it opened may have logged a console error."""
    s = Session(browser, base, viewport)
    s.sign_in(key)
    try:
        yield s
        assert s.errors == []
    finally:
        s.close()


def test_every_page_renders_signed_in_without_console_errors(site, browser):
    base, keys, ctx, facts = site
    s = Session(browser, base)
    s.go("/")
    assert "/ui/login" in s.page.url                     # not signed in: the form, not a JSON error
    s.shot("01-login")
    s.sign_in(keys["read"])
    assert s.page.url.rstrip("/").endswith("/ui") or s.page.url.endswith("/")
    assert s.page.locator("table.slos tbody tr").count() >= 6
    assert "payment-posting-15m" in s.page.inner_text("table.slos")
    assert s.page.locator("svg.spark").count() >= 6 and s.page.locator(".bar").count() >= 6
    assert "evaluated" in s.page.inner_text(".pagehead")
    s.shot("02-overview")
    # the overview refreshes itself: its <main> content is fetched again and swapped in (ui.refresh = 5 s)
    s.page.evaluate("document.querySelector('#main .pagehead').setAttribute('data-old', '1')")
    s.page.wait_for_selector("#main .pagehead:not([data-old])", timeout=12_000)
    assert s.page.locator("table.slos tbody tr").count() >= 6
    pages = [("/ui/slos/payment-posting-15m", "03-slo-payment-posting"),
             ("/ui/slos/payment-posting-15m?range=24h", "03b-slo-payment-posting-24h"),
             ("/ui/slos/crm-sync-errors", "04-slo-crm"),
             ("/ui/slos/payment-reconciled-1h", "05-slo-grouped"), ("/ui/journeys", "06-journey-search"),
             ("/ui/journeys/" + quote(facts["cid"], safe=""), "07-journey"),
             ("/ui/stuck?journey=payment_to_posting", "08-stuck"), ("/ui/anomalies", "09-anomalies"),
             ("/ui/alerts", "10-alerts"), ("/docs", "11-api-docs")]
    for path, name in pages:
        resp = s.go(path)
        assert resp.status == 200, (path, resp.status)
        s.shot(name)
    assert s.page.locator(".swagger-ui .opblock").count() > 5   # Swagger rendered the spec from local assets
    assert s.errors == []
    s.close()


def test_phone_layout_has_no_sideways_page(site, browser):
    base, keys, _, facts = site
    with signed_in(browser, base, keys["read"], PHONE) as s:
        for path, name in (("/ui/", "12-phone-overview"), ("/ui/journeys/" + quote(facts["cid"], safe=""),
                                                            "13-phone-journey"), ("/ui/stuck", "14-phone-stuck")):
            s.go(path)
            overflow = s.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            wide = s.page.evaluate("""[...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll')
                && e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5)
                .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
            assert overflow <= 1, (path, overflow, wide)     # wide tables scroll inside their card, not the page
            s.shot(name)


def test_find_a_journey_by_correlation_id_and_by_invoice_reference(site, browser):
    base, keys, _, facts = site
    with signed_in(browser, base, keys["read"]) as s:
        s.page.fill("header .search input", facts["cid"])
        s.page.press("header .search input", "Enter")
        s.page.wait_for_load_state("networkidle")
        assert facts["cid"] in s.page.inner_text("h1")
        timeline = s.page.inner_text("table.timeline")
        assert "invoice.created" in timeline and "odoo" in timeline
        s.go("/ui/journeys?q=" + quote(facts["invoice_ref"]) + "&by=invoice_ref")
        assert facts["cid"] in s.page.inner_text("main")     # one match opens it, several list it
        s.go("/ui/journeys?q=no-such-thing-anywhere")
        assert "Nothing matches" in s.page.inner_text("main")


def test_overview_to_stuck_payment_timeline_in_three_clicks(site, browser):
    base, keys, _, facts = site
    with signed_in(browser, base, keys["read"]) as s:
        s.page.click("table.journeys a[href='/ui/stuck?journey=payment_to_posting'] >> nth=1")       # click 1: count
        s.page.wait_for_load_state("networkidle")
        first = s.page.locator("table.stuck tbody tr").first
        cid = first.locator("a").inner_text()
        assert cid == facts["stuck"][0].correlation_id                # oldest first
        assert re.search(r"\d", first.locator("td").nth(5).inner_text())  # the payment's amount is shown
        first.locator("a").click()                                                                  # click 2: item
        s.page.wait_for_load_state("networkidle")
        assert cid in s.page.inner_text("h1")
        journey = s.page.inner_text("main")
        assert "payment.settled" in journey and "OVERDUE" in journey and "overdue by" in journey
        s.shot("15-stuck-payment-timeline")
        s.page.click("#raw summary")                                                                # click 3: raw JSON
        assert '"correlation_id"' in s.page.inner_text("#raw pre")
        raw = s.context.request.get(base + "/ui/journeys/" + quote(cid, safe="") + "?format=json")
        assert raw.ok and raw.json()["correlation_id"] == cid
        csv_text = s.context.request.get(base + "/ui/stuck.csv?journey=payment_to_posting").text()
        assert csv_text.splitlines()[0].startswith("correlation_id,") and cid in csv_text


def test_acknowledge_an_anomaly(site, browser):
    base, keys, ctx, _ = site
    with signed_in(browser, base, keys["read"]) as s:                  # a read key sees no button (admin only)
        s.go("/ui/anomalies")
        assert s.page.locator("button.ack").count() == 0 and "admin acknowledges" in s.page.inner_text("main")
    with signed_in(browser, base, keys["admin"]) as s:
        s.go("/ui/anomalies")
        rows = s.page.locator("table.anomalies tbody tr[id^=anomaly-]")
        before = rows.count()
        assert before > 0
        row_id = rows.first.get_attribute("id")
        # without the CSRF token the same POST is refused, and nothing changes
        refused = s.context.request.post(base + "/ui/anomalies/" + row_id[8:] + "/ack", form={"next": "/ui/anomalies"})
        assert refused.status == 403 and refused.json()["field"] == "csrf"
        rows.first.locator("button.ack").click()
        s.page.wait_for_load_state("networkidle")
        assert s.page.locator(f"#{row_id}").count() == 0 and rows.count() <= before   # the list is capped
        s.go("/ui/anomalies?status=acknowledged")
        assert s.page.locator(f"#{row_id}").count() == 1
        assert "acknowledged by key" in s.page.inner_text(f"#{row_id}")
        s.shot("16-anomaly-acknowledged")


def test_wrong_key_expired_and_forged_cookies_are_refused_and_cookie_is_safe(site, browser):
    base, keys, ctx, _ = site
    s = Session(browser, base)
    s.sign_in("rw_deadbeef_not-a-real-key")
    assert "/ui/login" in s.page.url and "unknown or revoked" in s.page.inner_text(".msg")
    assert s.context.cookies() == []
    s.sign_in(keys["ingest"])                                          # a key without read scope
    assert "needs read or admin" in s.page.inner_text(".msg") and s.context.cookies() == []
    s.shot("17-login-refused")
    s.sign_in(keys["read"])
    (cookie,) = s.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
    assert keys["read"] not in cookie["value"] and keys["read"].split("_")[2] not in cookie["value"]
    assert s.page.evaluate("document.cookie") == ""                   # scripts cannot read the session
    # an expired cookie (signed with the real secret, issued beyond the TTL) and a forged one
    from webui.session import Sessions
    secret = (Path(ctx.config.data_dir) / "ui-secret").read_text()
    key_id = keys["read"].split("_")[1]
    ttl = ctx.ui.sessions.ttl
    expired = Sessions(secret, ttl, clock=lambda: time.time() - ttl - 60).issue(key_id, "read")
    forged = Sessions("not-the-secret" * 4, ttl).issue(key_id, "admin")
    for value in (expired, forged):
        s.context.clear_cookies()
        s.context.add_cookies([{"name": "revwatch_session", "value": value, "url": base}])
        s.go("/ui/anomalies")
        assert "/ui/login" in s.page.url and "expired" in s.page.inner_text(".msg")
    s.sign_in(keys["read"])
    s.page.click("text=Sign out")
    s.page.wait_for_load_state("networkidle")
    assert "/ui/login" in s.page.url and s.context.cookies() == []
    s.go("/ui/")
    assert "/ui/login" in s.page.url
    # the only console lines are the browser reporting the two refused sign-ins themselves
    assert [e for e in s.errors if not re.search(r"status of 40[13] ", e)] == []
    assert len(s.errors) == 2
    s.close()
