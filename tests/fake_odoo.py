"""A fake Odoo server for probe tests (no real Odoo can run here). It follows the documented protocols
(../shared/notes/odoo-external-api.md) exactly for what revwatch uses:

* `GET /web/version` (17+; 404 on 16, where clients fall back to `common.version`),
* `POST /jsonrpc` — services `common` (version, login, authenticate) and `object` (execute_kw); errors as HTTP 200
  with an `error` envelope whose `data.name` is the exception class; code 100 "Odoo Session Expired" on demand;
  on 19 the deprecated `object` service answers 404 unless `rpc.use_deprecated_services` is set,
* `POST /xmlrpc/2/common|object` — XML-RPC, faults with codes 1 application, 2 UserError, 3 AccessDenied, 4 AccessError,
* `POST /json/2/<model>/<method>` (19+) — bearer API key, named arguments, real HTTP statuses (401, 404, 422),
* ORM semantics: search_read / search_count / read_group (16–18) / formatted_read_group (19) / fields_get with
  Polish-notation domains (`&`, `|`, `!`; = != < <= > >= in not in like ilike), `order`, `limit`, `offset`;
  many2one values as [id, name], empty values as False; `queue.job` readable only by the queue-job manager group.
"""
from __future__ import annotations

import datetime as dt
import xmlrpc.client

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

DB, LOGIN, PASSWORD, API_KEY, UID = "prod", "bot", "s3cret-pass", "odoo-api-key-123", 2


class AccessError(Exception):
    name, code = "odoo.exceptions.AccessError", 4


class AccessDenied(Exception):
    name, code = "odoo.exceptions.AccessDenied", 3


class UserError(Exception):
    name, code = "odoo.exceptions.UserError", 2


class MissingModel(Exception):
    name, code = "builtins.KeyError", 1


def _ts(minutes_ago: float, now: dt.datetime) -> str:
    return (now - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")


def seed(version: int, now: dt.datetime) -> dict[str, list[dict]]:
    """Realistic records, shaped as Odoo `version` stores them."""
    eur = [1, "EUR"]
    moves = []
    for i in range(1, 8):
        same_second = _ts(30, now)                 # three invoices written in the same second (cursor edge)
        moves.append({"id": i, "name": f"INV/2026/{i:05d}" if i != 7 else False, "move_type": "out_invoice",
                      "state": "posted" if i <= 5 else "draft", "create_date": _ts(3000 if i == 6 else 60 - i, now),
                      "write_date": same_second if i in (2, 3, 4) else _ts(50 - i * 5, now),
                      "amount_total": 100.0 * i, "currency_id": eur, "partner_id": [10 + i, f"Customer {i}"],
                      "ref": False, "payment_reference": f"INV/2026/{i:05d}", "invoice_origin": f"SUB{i:03d}",
                      "payment_state": "paid" if i == 1 else "not_paid",
                      **({"payment_id": False} if version < 18 else {"origin_payment_id": False})})
    moves.append({**moves[0], "id": 20, "move_type": "entry", "name": "MISC/1"})
    if version < 18:         # payment state is its journal entry's
        payments = [{"id": i, "name": f"PBNK1/2026/{i:05d}", "state": "posted" if i < 4 else "draft",
                     "payment_type": "inbound", "amount": 100.0 * i, "currency_id": eur, "partner_id": [11, "C"],
                     "is_reconciled": i == 1, "is_matched": i == 1, "payment_reference": f"INV/2026/{i:05d}",
                     "ref": f"pay_{i}", "write_date": _ts(20 - i, now), "move_id": [100 + i, f"PBNK1/{i}"]}
                    for i in range(1, 5)]
    else:                    # own state, memo instead of ref, may have no journal entry
        states = {1: "paid", 2: "in_process", 3: "in_process", 4: "draft"}
        payments = [{"id": i, "name": f"PBNK1/2026/{i:05d}", "state": states[i], "payment_type": "inbound",
                     "amount": 100.0 * i, "currency_id": eur, "partner_id": [11, "C"], "is_reconciled": i == 1,
                     "is_matched": i == 1, "payment_reference": f"INV/2026/{i:05d}", "memo": f"pay_{i}",
                     "write_date": _ts(20 - i, now), "move_id": False if i == 3 else [100 + i, f"PBNK1/{i}"]}
                    for i in range(1, 5)]
    lines = [{"id": i, "amount": [250.0, -40.5, 99.99][i - 1], "date": (now - dt.timedelta(days=i * 3)).strftime("%Y-%m-%d"),
              "is_reconciled": False, "payment_ref": f"BANK {i}", "write_date": _ts(10, now)} for i in range(1, 4)]
    lines.append({"id": 9, "amount": 10.0, "date": now.strftime("%Y-%m-%d"), "is_reconciled": True,
                  "payment_ref": "done", "write_date": _ts(5, now)})
    today = now.date()
    subs = []
    for i in range(1, 5):
        rec = {"id": i, "name": f"SUB{i:03d}", "is_subscription": True, "write_date": _ts(100, now),
               "next_invoice_date": str(today - dt.timedelta(days=2 if i <= 2 else -5))}
        if version == 16:
            rec.update(stage_category="progress" if i != 2 else "closed", recurrence_id=[1, "Monthly"])
        else:
            rec.update(subscription_state="3_progress" if i != 2 else "6_churn", plan_id=[1, "Monthly"])
        subs.append(rec)
    jobs = [{"id": i, "uuid": f"u{i}", "state": st, "date_created": _ts(age, now), "channel": "root",
             "write_date": _ts(1, now)}
            for i, (st, age) in enumerate([("pending", 90), ("pending", 10), ("failed", 300), ("done", 500),
                                           ("started", 2), ("enqueued", 1)], start=1)]
    crons = [{"id": 1, "cron_name": "Bank sync", "active": True, "nextcall": _ts(120, now), "write_date": _ts(1, now)},
             {"id": 2, "cron_name": "Invoicing", "active": True, "nextcall": _ts(-10, now), "write_date": _ts(1, now)},
             {"id": 3, "cron_name": "Old", "active": False, "nextcall": _ts(9999, now), "write_date": _ts(1, now)}]
    return {"account.move": moves, "account.payment": payments, "account.bank.statement.line": lines,
            "sale.order": subs, "queue.job": jobs, "ir.cron": crons, "res.users": [{"id": UID, "login": LOGIN}]}


def _match(rec: dict, term) -> bool:
    field, op, value = term
    v = rec.get(field, False)
    if op == "=":
        return v == value
    if op == "!=":
        return v != value
    if op in ("<", "<=", ">", ">="):
        if v is False or v is None:
            return False
        return {"<": v < value, "<=": v <= value, ">": v > value, ">=": v >= value}[op]
    if op == "in":
        return v in value
    if op == "not in":
        return v not in value
    if op in ("like", "ilike"):
        a, b = str(value), str(v or "")
        return a.lower() in b.lower() if op == "ilike" else a in b
    raise UserError(f"Invalid domain operator {op!r}")


def evaluate(domain: list, rec: dict) -> bool:
    """Odoo domain semantics: Polish notation with implicit '&' between consecutive terms."""
    items = [tuple(x) if isinstance(x, list) else x for x in domain]
    stack: list[bool] = []
    for item in reversed(items):
        if item == "!":
            stack.append(not stack.pop())
        elif item in ("&", "|"):
            a, b = stack.pop(), stack.pop()
            stack.append(a and b if item == "&" else a or b)
        else:
            if not (isinstance(item, tuple) and len(item) == 3):
                raise UserError(f"Invalid leaf {item!r}")
            stack.append(_match(rec, item))
    return all(stack)


def _sort(records: list[dict], order: str | None) -> list[dict]:
    out = list(records)
    for part in reversed([p.strip() for p in (order or "id asc").split(",") if p.strip()]):
        name, _, direction = part.partition(" ")
        out.sort(key=lambda r: (r.get(name) is False, r.get(name)), reverse=direction.strip().lower() == "desc")
    return out


class FakeOdoo:
    """State of one fake Odoo server; `app` is its ASGI application."""

    def __init__(self, version: int, now: dt.datetime | None = None, queue_job_manager: bool = True,
                 deprecated_rpc_enabled: bool = False):
        self.version = version
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self.data = seed(version, self.now)
        self.queue_job_manager = queue_job_manager
        self.deprecated_rpc_enabled = deprecated_rpc_enabled
        self.expire_session_once = False
        self.calls: list[tuple[str, str, str]] = []            # (protocol, model, method)
        self.app = self._build()

    # -- the ORM ------------------------------------------------------------------------------------------
    def _records(self, model: str) -> list[dict]:
        if model not in self.data:
            raise MissingModel(f"Object {model} doesn't exist")
        if model == "queue.job" and not self.queue_job_manager:
            raise AccessError("You are not allowed to access 'Job Queue' (queue.job) records.")
        return self.data[model]

    def execute(self, model: str, method: str, args: list, kw: dict):
        recs = self._records(model)
        if method in ("search_read", "search_count", "read_group", "formatted_read_group"):
            domain = kw.get("domain", args[0] if args else [])
            found = [r for r in recs if evaluate(domain, r)]
        if method == "search_read":
            fields = kw.get("fields", args[1] if len(args) > 1 else None)
            found = _sort(found, kw.get("order"))
            off, lim = int(kw.get("offset", 0) or 0), kw.get("limit")
            found = found[off: off + lim if lim else None]
            return [{k: r.get(k, False) for k in (["id"] + [f for f in fields if f != "id"])} if fields else dict(r)
                    for r in found]
        if method == "search_count":
            return len(found)
        if method == "read_group":
            if self.version >= 19:
                raise UserError("read_group is deprecated, use formatted_read_group")
            groupby = kw.get("groupby", args[2] if len(args) > 2 else [])
            return self._group(found, groupby[0], lazy=kw.get("lazy", True))
        if method == "formatted_read_group":
            if self.version < 19:
                raise AttributeError("formatted_read_group")
            return self._group(found, kw["groupby"][0], lazy=False)
        if method == "fields_get":
            keys = set().union(*(r.keys() for r in recs)) if recs else set()
            return {k: {"type": "char", "string": k} for k in sorted(keys)}
        if method == "context_get" and model == "res.users":
            return {"lang": "en_US", "tz": "UTC", "uid": UID}
        raise AttributeError(method)

    @staticmethod
    def _group(found: list[dict], field: str, lazy: bool) -> list[dict]:
        groups: dict = {}
        for r in found:
            groups.setdefault(r.get(field, False), 0)
            groups[r.get(field, False)] += 1
        key = f"{field}_count" if lazy else "__count"
        return [{field: v, key: n, "__domain": [[field, "=", v]]} for v, n in groups.items()]

    def _check_login(self, db, login, password) -> int | bool:
        return UID if db == DB and login == LOGIN and password in (PASSWORD, API_KEY) else False

    def _object(self, protocol: str, args: list):
        db, uid, password, model, method, margs, *rest = args
        kw = rest[0] if rest else {}
        self.calls.append((protocol, model, method))
        if db != DB or uid != UID or password not in (PASSWORD, API_KEY):
            raise AccessDenied("Access Denied")
        return self.execute(model, method, margs, kw)

    # -- transports ---------------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/web/version")
        def web_version():
            if self.version == 16:
                return Response(status_code=404)
            return {"version_info": [self.version, 0, 0, "final", 0, ""], "version": f"{self.version}.0"}

        @app.post("/jsonrpc")
        async def jsonrpc(request: Request):
            try:
                body = await request.json()
            except ValueError:
                return Response("Invalid JSON data", status_code=400)
            rid, params = body.get("id"), body.get("params") or {}
            service, method, args = params.get("service"), params.get("method"), params.get("args", [])
            if self.version >= 19 and service == "object" and not self.deprecated_rpc_enabled:
                return Response(status_code=404)
            if self.expire_session_once and service == "object":
                self.expire_session_once = False
                return {"jsonrpc": "2.0", "id": rid, "error": {"code": 100, "message": "Odoo Session Expired",
                        "data": {"name": "odoo.http.SessionExpiredException", "message": "Session expired",
                                 "arguments": ["Session expired"], "context": {}, "debug": "Traceback …"}}}
            try:
                if service == "common" and method == "version":
                    result = {"server_version": f"{self.version}.0", "server_version_info": [self.version, 0, 0,
                              "final", 0, ""], "server_serie": f"{self.version}.0", "protocol_version": 1}
                elif service == "common" and method in ("login", "authenticate"):
                    result = self._check_login(*args[:3])
                elif service == "object" and method == "execute_kw":
                    result = self._object("jsonrpc", args)
                else:
                    raise UserError(f"unknown service {service}.{method}")
            except (AccessError, AccessDenied, UserError, MissingModel, AttributeError) as e:
                name = getattr(e, "name", "builtins.AttributeError")
                return {"jsonrpc": "2.0", "id": rid, "error": {
                    "code": 200 if self.version < 18 else 0, "message": "Odoo Server Error",
                    "data": {"name": name, "message": str(e), "arguments": [str(e)], "context": {},
                             "debug": "Traceback (most recent call last): …"}}}
            return {"jsonrpc": "2.0", "id": rid, "result": result}

        @app.post("/xmlrpc/2/{service}")
        async def xml(service: str, request: Request):
            if self.version >= 19 and service == "object" and not self.deprecated_rpc_enabled:
                return Response(status_code=404)
            params, method = xmlrpc.client.loads(await request.body(), use_builtin_types=True)
            try:
                if service == "common" and method == "version":
                    result = {"server_version": f"{self.version}.0",
                              "server_version_info": [self.version, 0, 0, "final", 0, ""]}
                elif service == "common" and method in ("login", "authenticate"):
                    result = self._check_login(*params[:3])
                elif service == "object" and method == "execute_kw":
                    result = self._object("xmlrpc", list(params))
                else:
                    raise UserError("unknown method")
                payload = xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False)
            except (AccessError, AccessDenied, UserError, MissingModel, AttributeError) as e:
                code = getattr(e, "code", 1)
                text = "Traceback (most recent call last): …" if code == 1 else str(e)
                payload = xmlrpc.client.dumps(xmlrpc.client.Fault(code, text), methodresponse=True)
            return Response(payload, media_type="text/xml")

        @app.post("/json/2/{model}/{method}")
        async def json2(model: str, method: str, request: Request):
            if self.version < 19:
                return Response(status_code=404)
            auth = request.headers.get("authorization", "")
            if auth.lower() != f"bearer {API_KEY}".lower():
                return JSONResponse({"name": "werkzeug.exceptions.Unauthorized", "message": "Invalid apikey",
                                     "arguments": ["Invalid apikey", 401], "context": {}, "debug": ""}, 401)
            body = await request.json()
            self.calls.append(("json2", model, method))
            allowed = {"search_read", "search_count", "formatted_read_group", "fields_get", "context_get"}
            if model not in self.data or method not in allowed:
                return JSONResponse({"name": "werkzeug.exceptions.NotFound", "message": "Not Found",
                                     "arguments": [], "context": {}, "debug": ""}, 404)
            if set(body) - {"ids", "context", "domain", "fields", "order", "limit", "offset", "groupby",
                            "aggregates", "attributes"}:
                return JSONResponse({"name": "werkzeug.exceptions.UnprocessableEntity",
                                     "message": "unexpected arguments", "arguments": [], "context": {},
                                     "debug": ""}, 422)
            try:
                return self.execute(model, method, [], body)
            except AccessError as e:
                return JSONResponse({"name": e.name, "message": str(e), "arguments": [str(e)], "context": {},
                                     "debug": ""}, 403)

        return app
