"""Odoo external API client over httpx: JSON-RPC (`/jsonrpc`), XML-RPC (`/xmlrpc/2/…`) and JSON-2
(`/json/2/<model>/<method>`, Odoo 19+), following the protocols as Odoo documents them
(../shared/notes/odoo-external-api.md):

* `/jsonrpc` answers errors with HTTP 200 and an `error` envelope (`odoo/http.py` `JsonRPCDispatcher.handle_error`:
  `code` 200 on 16–18, 0 on 19, 404 for NotFound); the kind is `error.data.name`, never the code.
* XML-RPC faults carry codes 1 (application error: the fault string is a traceback whose last line names the
  exception, e.g. `ValueError: Invalid field …`), 2 (UserError/warning), 3 (AccessDenied), 4 (AccessError)
  (`odoo/addons/base/controllers/rpc.py` `xmlrpc_handle_exception_int`).
* JSON-2 uses real HTTP statuses (401 bad key, 403 access, 404 unknown model/method, 422 bad arguments, 500 other)
  and a bearer API key; every argument is passed by name (`addons/rpc/controllers/json2.py`).
* The protocol is picked from `/web/version` (JSON-2 on 19+ when an API key is configured), or forced by config.
  19.0 still serves `/jsonrpc` (with a deprecation warning in Odoo's log); where the database gates it
  (`rpc.use_deprecated_services` off) the reply is HTTP 200 with `error.code` 404 — then, with an API key, the
  client switches to JSON-2.
* `/jsonrpc` and `/xmlrpc/2` are stateless (credentials on every call): there is no session to expire, so a
  failed authentication is final for the run (a revoked key, a changed password).
"""
from __future__ import annotations

import itertools
import xmlrpc.client
from collections.abc import Sequence
from typing import Any

import httpx

FAULT_KINDS = {1: "odoo.exceptions.ApplicationError", 2: "odoo.exceptions.UserError",
               3: "odoo.exceptions.AccessDenied", 4: "odoo.exceptions.AccessError"}


class OdooError(Exception):
    """An error Odoo reported, with its exception class name (`odoo.exceptions.AccessError`, …)."""

    def __init__(self, name: str, message: str, status: int | None = None, json2: bool = False):
        super().__init__(f"{name}: {message}")
        self.name, self.message, self.status, self.json2 = name, message, status, json2

    @property
    def access_error(self) -> bool:
        return self.name.endswith("AccessError") or self.status == 403

    @property
    def missing_model(self) -> bool:
        """`Object X doesn't exist` (UserError over RPC, odoo/service/model.py) or a JSON-2 404."""
        return "doesn't exist" in self.message or "does not exist" in self.message or \
            (self.status == 404 and self.json2)

    @property
    def invalid_field(self) -> bool:
        """An unknown field in `fields` or a domain: a bare ValueError "Invalid field …" (odoo/models.py)."""
        return "Invalid field" in self.message

    @property
    def gated(self) -> bool:
        """The deprecated RPC endpoint is refused (19 with `rpc.use_deprecated_services` off)."""
        return self.status == 404 and self.name.endswith("NotFound") and not self.json2

    @property
    def auth_error(self) -> bool:
        return self.name.endswith(("AccessDenied", "Unauthorized")) or self.status == 401


class OdooClient:
    """One Odoo database, one user; `call(model, method, *args, **kwargs)` whatever the protocol."""

    def __init__(self, url: str, db: str, login: str = "", password: str = "", api_key: str = "",
                 protocol: str = "auto", timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.url, self.db, self.login_name = url.rstrip("/"), db, login
        self.secret = api_key or password          # API keys replace passwords on the RPC protocols
        self.api_key = api_key
        self.protocol = protocol
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self.uid: int | None = None
        self.version: tuple[int, ...] | None = None
        self._ids = itertools.count(1)

    def close(self) -> None:
        self.http.close()

    # -- discovery ----------------------------------------------------------------------------------------
    def server_version(self) -> tuple[int, ...]:
        """(major, minor, …) from `/web/version`, else from the `common.version` RPC (Odoo 16 has no route)."""
        if self.version is None:
            r = self.http.get("/web/version")
            if r.status_code == 200:
                info = r.json()["version_info"]
            else:
                info = self._jsonrpc("common", "version", [])["server_version_info"]
            self.version = tuple(int(x) for x in info[:2])
        return self.version

    def resolve_protocol(self) -> str:
        """The protocol to use: forced by config, else JSON-2 on 19+ with an API key, else JSON-RPC."""
        if self.protocol != "auto":
            return self.protocol
        self.protocol = "json2" if self.server_version()[0] >= 19 and self.api_key else "jsonrpc"
        return self.protocol

    # -- transports ---------------------------------------------------------------------------------------
    def _jsonrpc(self, service: str, method: str, args: list) -> Any:
        body = {"jsonrpc": "2.0", "method": "call", "id": next(self._ids),
                "params": {"service": service, "method": method, "args": args}}
        r = self.http.post("/jsonrpc", json=body)
        if r.status_code == 404:
            raise OdooError("werkzeug.exceptions.NotFound", "/jsonrpc is not available", 404)
        r.raise_for_status()
        doc = r.json()
        if "error" in doc:
            err = doc["error"]
            data = err.get("data") or {}
            name = data.get("name") or f"jsonrpc.{err.get('code')}"
            status = 404 if err.get("code") == 404 or name.endswith("NotFound") else None
            raise OdooError(name, data.get("message") or err.get("message", ""), status)
        return doc.get("result")

    def _xmlrpc(self, service: str, method: str, args: tuple) -> Any:
        payload = xmlrpc.client.dumps(args, methodname=method, allow_none=False)
        r = self.http.post(f"/xmlrpc/2/{service}", content=payload, headers={"Content-Type": "text/xml"})
        if r.status_code == 404:
            raise OdooError("werkzeug.exceptions.NotFound", f"/xmlrpc/2/{service} is not available", 404)
        r.raise_for_status()
        try:
            return xmlrpc.client.loads(r.content, use_builtin_types=True)[0][0]
        except xmlrpc.client.Fault as f:
            code = f.faultCode if isinstance(f.faultCode, int) else 1
            text = str(f.faultString).strip()
            name, message = FAULT_KINDS.get(code, f"xmlrpc.{code}"), text.splitlines()[0][:300] if text else ""
            if code == 1 and text.startswith("Traceback"):       # the last line names the exception
                last = text.splitlines()[-1]
                cls, _, message = last.partition(": ")
                name = cls if "." in cls else f"builtins.{cls}"
            raise OdooError(name, message[:500]) from None

    def _json2(self, model: str, method: str, ids: list[int] | None, kwargs: dict) -> Any:
        headers = {"Authorization": f"bearer {self.api_key}", "X-Odoo-Database": self.db,
                   "User-Agent": "revwatch-probe"}
        body = dict(kwargs)
        if ids:
            body["ids"] = ids
        r = self.http.post(f"/json/2/{model}/{method}", json=body, headers=headers)
        if r.status_code >= 400:
            try:
                err = r.json()
            except ValueError:
                err = {}
            raise OdooError(err.get("name") or f"http.{r.status_code}", err.get("message") or r.text[:200],
                            r.status_code, json2=True)
        return r.json()

    # -- authentication and calls -------------------------------------------------------------------------
    def authenticate(self) -> int:
        """Log in (JSON-RPC / XML-RPC): the uid, or OdooError AccessDenied on bad credentials."""
        proto = self.resolve_protocol()
        if proto == "json2":
            self.uid = self._json2("res.users", "context_get", None, {}).get("uid", 0) or -1
            return self.uid
        args = [self.db, self.login_name, self.secret]
        uid = (self._xmlrpc("common", "login", tuple(args)) if proto == "xmlrpc"
               else self._jsonrpc("common", "login", args))
        if not uid:
            raise OdooError("odoo.exceptions.AccessDenied", f"login failed for user {self.login_name!r}")
        self.uid = uid
        return uid

    def call(self, model: str, method: str, args: list | None = None, kwargs: dict | None = None,
             ids: list[int] | None = None) -> Any:
        """Call a model method. JSON-2 takes arguments by name (`kwargs`); the RPC protocols take both."""
        proto = self.resolve_protocol()
        kwargs = kwargs or {}
        if proto == "json2":
            return self._json2(model, method, ids, kwargs)
        full_args = ([ids] if ids else []) + list(args or [])
        try:
            if self.uid is None:
                self.authenticate()
            return self._rpc(proto, model, method, full_args, kwargs)
        except OdooError as e:
            if e.gated and self.api_key:                     # deprecated endpoints refused: JSON-2
                self.protocol = "json2"
                return self.call(model, method, args, kwargs, ids)
            raise

    def _rpc(self, proto: str, model: str, method: str, args: list, kwargs: dict) -> Any:
        payload = [self.db, self.uid, self.secret, model, method, args, kwargs]
        if proto == "xmlrpc":
            return self._xmlrpc("object", "execute_kw", tuple(payload))
        return self._jsonrpc("object", "execute_kw", payload)

    # -- the ORM calls revwatch uses (arguments by name: JSON-2 requires it, execute_kw accepts it) -----------
    def search_read(self, model: str, domain: list, fields: list[str], order: str | None = None,
                    limit: int | None = None, offset: int = 0, context: dict | None = None) -> list[dict]:
        kw: dict = {"domain": domain, "fields": fields, "offset": offset}
        if context:
            kw["context"] = context
        if order:
            kw["order"] = order
        if limit:
            kw["limit"] = limit
        return self.call(model, "search_read", kwargs=kw)

    def search_count(self, model: str, domain: list) -> int:
        return self.call(model, "search_count", kwargs={"domain": domain})

    def fields_get(self, model: str, fields: list[str] | None = None, attributes: list[str] | None = None,
                   lang: str | None = None) -> dict[str, dict]:
        kw: dict = {"attributes": attributes or ["type", "string", "selection", "relation", "store"]}
        if fields:
            kw["allfields"] = fields
        if lang:
            kw["context"] = {"lang": lang}
        return self.call(model, "fields_get", kwargs=kw)

    def group(self, model: str, domain: list, groupby: list[str], sums: Sequence[str] = ()) -> list[dict]:
        """Counts and sums per group, computed by Odoo (never a capped search_read summed here):
        `read_group(lazy=False)` on 16–18, `formatted_read_group` on 19 (`odoo/models.py`). Rows come back as
        `{<groupby>: value ([id, name] for many2one), "__count": n, <field>: sum}`."""
        if self.server_version()[0] >= 19:
            rows = self.call(model, "formatted_read_group", kwargs={
                "domain": domain, "groupby": list(groupby), "aggregates": [f"{f}:sum" for f in sums] + ["__count"]})
            return [{**{g: r.get(g, False) for g in groupby}, "__count": r.get("__count", 0),
                     **{f: r.get(f"{f}:sum") or 0 for f in sums}} for r in rows]
        rows = self.call(model, "read_group", kwargs={"domain": domain, "fields": [f"{f}:sum" for f in sums],
                                                      "groupby": list(groupby), "lazy": False})
        return [{**{g: r.get(g, False) for g in groupby}, "__count": r.get("__count", 0),
                 **{f: r.get(f) or 0 for f in sums}} for r in rows]

    def count_by(self, model: str, domain: list, field: str) -> dict[Any, int]:
        """Record counts per value of `field` (many2one groups keyed by display name)."""
        out: dict[Any, int] = {}
        for row in self.group(model, domain, [field]):
            value = row[field][1] if isinstance(row[field], list) else row[field]
            out[value] = row["__count"]
        return out
