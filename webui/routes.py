"""HTTP routes of the web UI (`/`, `/ui/...`, `/docs`) and `install(app)`, the one call that mounts it.

Who may see a page: a signed-in browser session (webui.session), a request with a read-scope Bearer key (a
header-adding proxy), or anyone when `ui.public` (kiosk, read-only). Anyone else gets the sign-in form (HTML
pages answer 303 to /ui/login?next=...). State changes (sign-out, acknowledge) are POSTs that need a session and
its CSRF token, or a Bearer key (no cookie, so no CSRF risk); a POST whose Origin is another site is refused.
The API key typed into the form is verified, never stored (the cookie holds its public id) and never logged.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from anomaly.findings import acknowledge
from revwatch.journeys import AGING_LABELS, NotFound
from revwatch.journeys.funnel import funnel
from revwatch.api import ApiError, AppContext, ctx_of, instant_param
from revwatch.auth import allows
from revwatch.schema import LINK_ATTRIBUTES
from revwatch.store import StoreError
from revwatch.units import utcnow
from slo.history import Series
from slo.state import LABELS as STATE_LABELS, units_phrase
from webui import charts, data
from webui.cache import Refreshing
from webui.format import FILTERS
from webui.session import COOKIE, Revocations, Sessions, Viewer, csrf_ok, load_secret

log = logging.getLogger("revwatch.webui")
HERE = Path(__file__).parent
STATIC = HERE / "static"
router = APIRouter(include_in_schema=False)
STUCK_REFRESH_SECONDS = 60      # stuck counts/money: seconds of work at 10 M events, and thresholds are minutes
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@dataclass
class WebUi:
    """The UI's state held by the app context: the session issuer and the template environment."""
    sessions: Sessions
    templates: Environment
    public: bool
    secure_cookie: str
    refresh_seconds: int
    sparklines: Refreshing[Series]              # overview data that changes on the evaluator's cadence
    journey_summaries: Refreshing[list[dict]]


class LoginRequired(Exception):
    """No acceptable session: HTML pages answer with the sign-in form (a redirect)."""

    def __init__(self, next_url: str, reason: str = ""):
        super().__init__(reason)
        self.next_url, self.reason = next_url, reason


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:                     # docs assets are optional at run time: /docs says so
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def install(app: FastAPI) -> None:
    """Mount the UI on the app: its state on the app context, its routes, its sign-in redirect."""
    ctx: AppContext = app.state.ctx
    ui_cfg = ctx.config.ui
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    env.globals.update(sparkline=charts.sparkline, budget_bar=charts.budget_bar, line_chart=charts.line_chart,
                       Line=charts.Line, waterfall=charts.waterfall, funnel_chart=charts.funnel_chart,
                       state_labels=STATE_LABELS, alert_groups=data.alert_groups,
                       budget_units=units_phrase, enc=lambda s: quote(str(s), safe=""))
    refresh = max(5, int(ui_cfg.refresh.total_seconds()))
    sessions = Sessions(load_secret(ui_cfg.secret, ctx.config.data_dir), int(ui_cfg.session_ttl.total_seconds()),
                        Revocations(ctx.store))
    sessions.revocations.preload()
    ctx.ui = WebUi(sessions, env, ui_cfg.public, ui_cfg.secure_cookie, refresh,
                   Refreshing(lambda: data.sparklines(ctx), refresh),
                   Refreshing(lambda: data.journey_summaries(ctx), max(refresh, STUCK_REFRESH_SECONDS)))
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _to_login(_: Request, exc: LoginRequired):
        target = "/ui/login?next=" + quote(exc.next_url, safe="")
        if exc.reason:
            target += "&reason=" + quote(exc.reason)
        return RedirectResponse(target, status_code=303)


# -- who is looking ----------------------------------------------------------------------------------------
def _session_viewer(request: Request) -> tuple[Viewer | None, str]:
    """The viewer of the request's credentials and, when refused, why ('' when none were presented)."""
    ctx = ctx_of(request)
    header = request.headers.get("authorization", "")
    if header:
        kind, _, token = header.partition(" ")
        key = ctx.keys.verify(token.strip()) if kind.lower() == "bearer" and token.strip() else None
        if key is None or not allows(key, "read"):
            return None, "invalid"
        return Viewer(key.key_id, key.scope), ""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        v = ctx.ui.sessions.read(cookie)
        if v is None:
            return None, "expired"
        key = ctx.keys.by_id(v.key_id or "")
        if key is None or not allows(key, "read"):
            return None, "revoked"
        return Viewer(key.key_id, key.scope, v.csrf, v.session_id, v.expires), ""   # the key's scope now
    return None, ""


def viewer(request: Request) -> Viewer:
    """The viewer, or LoginRequired (a public kiosk sees pages read-only without signing in)."""
    try:
        v, why = _session_viewer(request)
    except StoreError:
        raise ApiError(503, "the store is unavailable to check your session", headers={"Retry-After": "5"}) from None
    if v is not None:
        return v
    if ctx_of(request).ui.public and why in ("", "expired"):
        return Viewer(None, "read")
    raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""), why)


viewer.scope = "read"   # type: ignore[attr-defined]  # what route tables (revwatch.openapi.route_scopes) report


def admin_viewer(request: Request) -> Viewer:
    """The viewer of a route that needs an admin key, as its API twin does (acknowledge: a read key may look, not
    act); a kiosk viewer is told to sign in, a read key that it needs admin."""
    v = viewer(request)
    if not v.signed_in:
        raise ApiError(403, "sign in to change anything (this is a read-only public view)", "session")
    if not v.can_acknowledge:
        raise ApiError(403, f"this needs an admin key (the session's key has scope '{v.scope}')", "scope")
    return v


admin_viewer.scope = "admin"   # type: ignore[attr-defined]


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin names another host)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null" and not request.cookies:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:64 * 1024].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def acting_viewer(request: Request) -> tuple[Viewer, dict[str, str]]:
    """The viewer of a state-changing POST: signed in (or Bearer), same origin, right CSRF token."""
    if not _same_origin(request):
        raise ApiError(403, "cross-site request refused", "Origin")
    v = viewer(request)
    form = await _form(request)
    if not v.can_act:
        raise ApiError(403, "sign in to change anything (this is a read-only public view)", "session")
    bearer = bool(request.headers.get("authorization"))
    if not bearer and not csrf_ok(v, form.get("csrf") or request.headers.get("x-csrf-token")):
        raise ApiError(403, "missing or wrong CSRF token; reload the page and try again", "csrf")
    return v, form


# -- rendering ---------------------------------------------------------------------------------------------
def render(request: Request, template: str, http_status: int = 200, **values) -> HTMLResponse:
    """A page with the common layout values and the UI's security headers."""
    ctx = ctx_of(request)
    v = values.pop("viewer", None)
    html = ctx.ui.templates.get_template(template).render(
        request=request, viewer=v, path=request.url.path, journeys_cfg=ctx.config.journeys,
        refresh=ctx.ui.refresh_seconds, now=utcnow(), **values)
    return HTMLResponse(html, status_code=http_status, headers=_headers())


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def _ui_instant(value: str | None, field: str):
    """An instant from a UI form: RFC 3339, or what a browser's datetime-local field sends (no zone: UTC, as the
    page labels it)."""
    if value is None or value == "":
        return None
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?", value):
        value += "Z"
    return instant_param(value, field)


def _safe_next(value: str | None, default: str = "/ui/") -> str:
    """Only local paths (no scheme, no //host): no open redirect through the sign-in form."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


# -- sign-in -----------------------------------------------------------------------------------------------
_REASONS = {"expired": "Your session expired or is not valid any more; sign in again.",
            "revoked": "The key of your session was revoked; sign in with another key.",
            "invalid": "That API key was refused.", "signed_out": "You are signed out."}


@router.get("/ui/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/ui/", reason: str = ""):
    """The sign-in form (an API key of read scope or higher)."""
    return render(request, "login.html", next=_safe_next(next), message=_REASONS.get(reason, ""))


@router.post("/ui/login")
async def login(request: Request):
    """Verify the key, then set the session cookie; the key itself goes nowhere."""
    if not _same_origin(request):
        raise ApiError(403, "cross-site request refused", "Origin")
    form = await _form(request)
    ctx = ctx_of(request)
    token = form.get("key", "").strip()
    nxt = _safe_next(form.get("next"))
    key = ctx.keys.verify(token) if token else None
    if key is None or not allows(key, "read"):
        message = ("Enter an API key." if not token else "That API key is unknown or revoked." if key is None
                   else f"This key has scope '{key.scope}'; signing in needs read or admin.")
        return render(request, "login.html", http_status=401 if key is None else 403, next=nxt, message=message)
    resp = RedirectResponse(nxt, status_code=303, headers=_headers())
    resp.set_cookie(COOKIE, ctx.ui.sessions.issue(key.key_id, key.scope), max_age=ctx.ui.sessions.ttl,
                    httponly=True, samesite="strict", secure=_secure(request), path="/")
    return resp


def _secure(request: Request) -> bool:
    """Whether the cookie gets `Secure`: `ui.secure_cookie` always/never, or (auto) when the request came over HTTPS.
    The scheme is the connection's own, or `X-Forwarded-Proto` only when the peer is one of
    `server.trusted_proxies` (revwatch.server installs uvicorn's proxy-headers middleware for exactly those)."""
    mode = ctx_of(request).ui.secure_cookie
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


@router.post("/ui/logout")
async def logout(request: Request):
    """End the session on the server (its id is revoked, so a copied cookie dies too; CSRF-protected) and go
    back to the sign-in form."""
    v, _ = await acting_viewer(request)
    await run_in_threadpool(ctx_of(request).ui.sessions.end, v)
    resp = RedirectResponse("/ui/login?reason=signed_out", status_code=303, headers=_headers())
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return resp


# -- pages -------------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def root(request: Request, v: Viewer = Depends(viewer)):
    """The overview (people and header-adding proxies alike)."""
    return overview(request, request.query_params.get("q", ""), v)


@router.get("/ui", response_class=HTMLResponse)
@router.get("/ui/", response_class=HTMLResponse)
def overview(request: Request, q: str = "", v: Viewer = Depends(viewer), by: str = ""):
    """Every SLO and group (or those matching `q`: name, description, group, owner, team, service, tier; `by=team`
    groups them under their team), open alerts, top anomalies and stuck money per journey; refreshes itself."""
    ctx = ctx_of(request)
    results = ctx.slo.latest_or_evaluate()
    at = ctx.slo.latest_at or (results[0].at if results else utcnow())
    series, _ = ctx.ui.sparklines.get()
    journeys, journeys_at = data.latest_journey_summaries(ctx) or ctx.ui.journey_summaries.get()
    q = q.strip()[:200]
    shown = [r for r in results if data.slo_matches(r, q)]
    rows = data.slo_rows(shown, series)
    if by == "team":                      # stable: within a team the usual order; SLOs without a team last
        rows.sort(key=lambda s: (s["ownership"]["team"] is None, (s["ownership"]["team"] or "").lower()))
    return render(request, "overview.html", viewer=v, at=at, slos=rows, q=q,
                  by_team=by == "team",
                  total_slos=len(results),
                  alerts=_or_none(lambda: data.open_alerts(ctx)),
                  anomalies=_or_none(lambda: data.anomalies(ctx, status="open", limit=5)),
                  journeys=journeys, journeys_at=journeys_at, eval_seconds=ctx.slo.last_seconds,
                  eval_lag=ctx.evaluator.lag() if ctx.evaluator is not None else None)


def _or_none(read):
    """A secondary overview panel: None (shown as unavailable) when the store fails, so the SLOs still show."""
    try:
        return read()
    except StoreError as e:
        log.warning("overview panel unavailable: %s", e)
        return None


@router.get("/ui/slos/{name}", response_class=HTMLResponse)
def slo_page(request: Request, name: str, group: str | None = None, range: str = "window",
             from_: str | None = Query(None, alias="from"), to: str | None = None, v: Viewer = Depends(viewer)):
    """One SLO over a range (presets, or custom from/to kept in the URL): SLI and burn rate with thresholds and the
    previous period, the window's budget after each point, windows, alert conditions, budget history, bad events."""
    if range not in data.RANGES and range != "custom":
        raise ApiError(400, f"range must be one of {', '.join(data.RANGES)} (or from/to)", "range")
    frm, until = _ui_instant(from_, "from"), _ui_instant(to, "to")
    now = utcnow()
    if until is not None and until > now:
        until = None                                  # a custom end in the future is now
    if frm is not None:
        if frm >= (until or now):
            raise ApiError(400, "from must be before to (and before now)", "from")
        if (until or now) - frm > data.MAX_CUSTOM_RANGE:
            raise ApiError(400, f"a custom range spans at most {data.MAX_CUSTOM_RANGE.days} days", "from")
    elif range == "custom":
        raise ApiError(400, "a custom range needs from (and optionally to)", "from")
    detail = data.slo_detail(ctx_of(request), name, group, range, frm, until)
    if detail is None:
        return render(request, "error.html", http_status=404, viewer=v, title="No such SLO",
                      message=f"No SLO is named {name!r}.")
    return render(request, "slo.html", viewer=v, d=detail, history_periods=data.HISTORY_PERIODS)


@router.get("/ui/slos/{name}/history", response_class=HTMLResponse)
def slo_history_page(request: Request, name: str, group: str | None = None, v: Viewer = Depends(viewer)):
    """An SLO's budget over its last windows (data.budget_history): SLI, bad/total, budget left, state."""
    ctx = ctx_of(request)
    spec = ctx.slo.spec(name)
    if spec is None or spec.is_prometheus:
        return render(request, "error.html", http_status=404, viewer=v, title="No such SLO",
                      message=f"No SLO evaluated by revwatch is named {name!r}.")
    latest = ctx.slo.latest_at or utcnow()
    history = data.budget_history(ctx, spec, latest, group)
    return render(request, "slo_history.html", viewer=v, d={"spec": spec, "history": history},
                  multi=len({h["group"] for h in history}) > 1)


@router.get("/ui/journeys", response_class=HTMLResponse)
def journeys_search(request: Request, q: str = "", by: str = "any", v: Viewer = Depends(viewer)):
    """Find a journey by correlation ID, invoice/payment reference or customer."""
    ctx = ctx_of(request)
    q = q.strip()[:256]
    results: list[dict] = []
    if q:
        if by in ("any", "correlation_id"):
            try:
                ctx.journeys.lookup(q)
                return RedirectResponse(f"/ui/journeys/{quote(q, safe='')}", status_code=303)
            except NotFound:
                pass
        keys = LINK_ATTRIBUTES if by == "any" else (by,) if by in LINK_ATTRIBUTES else ()
        seen = set()
        for key in keys:
            for item in ctx.journeys.search((key, q), limit=50):
                if item["correlation_id"] not in seen:
                    seen.add(item["correlation_id"])
                    results.append({**item, "matched": key})
        if len(results) == 1:
            return RedirectResponse(f"/ui/journeys/{quote(results[0]['correlation_id'], safe='')}", status_code=303)
    return render(request, "journeys.html", viewer=v, q=q, by=by, results=results,
                  by_options=("any", "correlation_id", *LINK_ATTRIBUTES))


@router.get("/ui/journeys/{cid:path}", response_class=HTMLResponse)
def journey_page(request: Request, cid: str, format: str = "html", v: Viewer = Depends(viewer)):
    """The cross-system timeline of one correlation ID (or its raw JSON with ?format=json)."""
    try:
        doc = ctx_of(request).journeys.lookup(cid)
    except NotFound:
        return render(request, "error.html", http_status=404, viewer=v, title="Not found",
                      message=f"Nothing is recorded for correlation ID {cid!r}.")
    if format == "json":
        return Response(orjson.dumps(doc, option=orjson.OPT_INDENT_2), media_type="application/json",
                        headers=_headers())
    spans = [x for x in doc["timeline"] if x["kind"] == "span"]
    return render(request, "journey.html", viewer=v, doc=doc, spans=spans,
                  raw=json.dumps(doc, indent=2, default=str))


def _stuck_filtered(request: Request, journey: str, q: str, bucket: str, currency: str) -> list[dict]:
    items = data.stuck_items(ctx_of(request), journey)
    ql = q.lower()
    return [i for i in items
            if (not ql or any(ql in str(i.get(f, "")).lower() for f in ("correlation_id", "customer", "ref")))
            and (not bucket or i["bucket"] == bucket) and (not currency or i["currency"] == currency)]


def _journey_param(request: Request, journey: str | None) -> str | None:
    names = list(ctx_of(request).config.journeys)
    if journey is None:
        return names[0] if names else None
    if journey not in names:
        raise ApiError(400, f"unknown journey {journey!r} (configured: {', '.join(names) or 'none'})", "journey")
    return journey


FUNNEL_RANGES = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}


@router.get("/ui/funnels", response_class=HTMLResponse)
def funnel_page(request: Request, journey: str | None = None, range: str = "7d", by: str = "",
                v: Viewer = Depends(viewer)):
    """A journey's funnel: count and money reaching each step, conversion, drop-off, step latency, where money
    waits (`revwatch.journeys.funnel`, the API's `GET /api/v1/funnels/{journey}`)."""
    journey = _journey_param(request, journey)
    if range not in FUNNEL_RANGES:
        raise ApiError(400, f"range must be one of {', '.join(FUNNEL_RANGES)}", "range")
    until = utcnow()
    found = funnel(ctx_of(request).store, ctx_of(request).config.journeys, journey, until - FUNNEL_RANGES[range],
                   until, by=by or None, cache=ctx_of(request).slo.instances) if journey else []
    return render(request, "funnel.html", viewer=v, journey=journey, range=range, ranges=list(FUNNEL_RANGES),
                  by=by, funnels=[f.as_dict() for f in found])


@router.get("/ui/stuck", response_class=HTMLResponse)
def stuck_page(request: Request, journey: str | None = None, q: str = "", bucket: str = "", currency: str = "",
               v: Viewer = Depends(viewer)):
    """Stuck instances of a journey: aging buckets, amount, customer, oldest first, filterable, CSV export."""
    journey = _journey_param(request, journey)
    items = _stuck_filtered(request, journey, q, bucket, currency) if journey else []
    buckets = {label: 0 for label in AGING_LABELS}
    for it in items:
        buckets[it["bucket"]] += 1
    return render(request, "stuck.html", viewer=v, journey=journey, items=items, q=q, bucket=bucket,
                  currency=currency, buckets=buckets, money=data.money_at_risk(items), limit=data.STUCK_LIMIT,
                  query=str(request.url.query))


@router.get("/ui/stuck.csv")
def stuck_csv(request: Request, journey: str | None = None, q: str = "", bucket: str = "", currency: str = "",
              _: Viewer = Depends(viewer)):
    """The filtered stuck list as CSV (spreadsheet-safe: cells starting with = + - @ are quoted)."""
    journey = _journey_param(request, journey)
    items = _stuck_filtered(request, journey, q, bucket, currency) if journey else []
    out = io.StringIO()
    w = csv.writer(out)
    cols = ("correlation_id", "journey", "started", "age_seconds", "bucket", "waiting_for", "overdue_seconds",
            "amount", "currency", "customer", "ref", "system")
    w.writerow(cols)
    for it in items:
        w.writerow([_csv_cell(it.get(c, "")) for c in cols])
    name = f"stuck-{journey or 'none'}-{utcnow():%Y%m%dT%H%M}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**_headers(), "Content-Disposition": f'attachment; filename="{name}"'})


def _csv_cell(v) -> str:
    s = f"{v:.0f}" if isinstance(v, float) else str(v if v is not None else "")
    return "'" + s if s[:1] in ("=", "+", "-", "@") and not _is_number(s) else s


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


@router.get("/ui/anomalies", response_class=HTMLResponse)
def anomalies_page(request: Request, status: str = "open", kind: str = "", v: Viewer = Depends(viewer)):
    """Anomaly findings with reasons and score; open ones can be acknowledged."""
    if status not in ("open", "acknowledged", "scored", "all"):
        raise ApiError(400, "status must be open, acknowledged, scored or all", "status")
    items = data.anomalies(ctx_of(request), None if status == "all" else status, kind or None)
    return render(request, "anomalies.html", viewer=v, items=items, status=status, kind=kind)


@router.post("/ui/anomalies/{finding_id}/ack", dependencies=[Depends(admin_viewer)])
async def ack_anomaly(request: Request, finding_id: str):
    """Acknowledge a finding (admin key: session + CSRF token, or Bearer); back to the list."""
    v, form = await acting_viewer(request)
    done = await run_in_threadpool(acknowledge, ctx_of(request).store, finding_id, by=v.key_id or "")
    if done is None:
        raise ApiError(404, f"no anomaly with id {finding_id!r}", "id")
    back = _safe_next(form.get("next"), "/ui/anomalies")
    return RedirectResponse(back, status_code=303, headers=_headers())


@router.get("/ui/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, slo: str = "", v: Viewer = Depends(viewer)):
    """The alert log with business impact, newest first."""
    return render(request, "alerts.html", viewer=v, items=data.alert_log(ctx_of(request), slo or None), slo=slo)


@router.get("/ui/sources", response_class=HTMLResponse)
def sources_page(request: Request, v: Viewer = Depends(viewer)):
    """Delivery telemetry per source (the counters /metrics exposes) and the open dead letters per source."""
    from collector.source_routes import source_stats
    c = ctx_of(request)
    opened = c.deadletters.find(status="open", limit=1000)[0] if c.deadletters is not None else []
    waiting: dict[str, int] = {}
    for x in opened:
        waiting[x["source"]] = waiting.get(x["source"], 0) + 1
    return render(request, "sources.html", viewer=v, items=source_stats(c), waiting=waiting)


@router.get("/ui/deadletters", response_class=HTMLResponse)
def deadletters_page(request: Request, source: str = "", reason: str = "", status: str = "open", cursor: str = "",
                     v: Viewer = Depends(viewer)):
    """Rejected items (the same reader as GET /api/v1/deadletters), newest first, with their body's start."""
    if status not in ("open", "replayed", "all"):
        raise ApiError(400, "status must be open, replayed or all", "status")
    c = ctx_of(request)
    if c.deadletters is None:
        raise ApiError(503, "dead letters are not available in this process", headers={"Retry-After": "5"})
    try:
        items, nxt = c.deadletters.find(source or None, reason or None, None, cursor or None, 100,
                                        None if status == "all" else status)
    except ValueError as e:
        raise ApiError(400, str(e), "cursor") from None
    return render(request, "deadletters.html", viewer=v, items=items, next_cursor=nxt, source=source, reason=reason,
                  status=status)


# -- assets and API docs -----------------------------------------------------------------------------------
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}
_SWAGGER_FILES = {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}


@router.get("/ui/static/{name}")
def static(name: str):
    """The UI's own assets (no directory walking: a flat folder, names checked)."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, "no such asset", "name")
    return FileResponse(path, media_type=_STATIC_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=3600"})


@router.get("/ui/static/swagger/{name}")
def swagger_asset(name: str):
    """Swagger UI's files from the installed swagger-ui-bundle package (works offline)."""
    base = _swagger_dir()
    if base is None or name not in _SWAGGER_FILES:
        raise ApiError(404, "no such asset", "name")
    return FileResponse(base / name, media_type=_STATIC_TYPES.get(Path(name).suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request):
    """Swagger UI for /openapi.json with local assets (no CDN)."""
    return render(request, "docs.html", available=_swagger_dir() is not None)
