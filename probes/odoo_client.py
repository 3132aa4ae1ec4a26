"""Odoo external API client over httpx: JSON-RPC (`/jsonrpc`), XML-RPC (`/xmlrpc/2/…`) and JSON-2
(`/json/2/<model>/<method>`, Odoo 19+), following the protocols as Odoo documents them
(../shared/notes/odoo-external-api.md):

* `/jsonrpc` answers errors with HTTP 200 and an `error` envelope; the kind is `error.data.name`, never the code.
* XML-RPC faults carry codes 1 (application error), 2 (UserError/warning), 3 (AccessDenied), 4 (AccessError).
* JSON-2 uses real HTTP statuses (401 bad key, 404 unknown model/method, 422 bad arguments) and a bearer API key;
  every argument is passed by name.
* The protocol is picked from `/web/version` (JSON-2 on 19+ when an API key is configured), or forced by config;
  a 404 on the deprecated endpoints (19 without `rpc.use_deprecated_services`) switches to JSON-2.
"""
from __future__ import annotations

import itertools
import xmlrpc.client
from typing import Any

import httpx

FAULT_KINDS = {1: "odoo.exceptions.ApplicationError", 2: "odoo.exceptions.UserError",
               3: "odoo.exceptions.AccessDenied", 4: "odoo.exceptions.AccessError"}


class OdooError(Exception):
    """An error Odoo reported, with its exception class name (`odoo.exceptions.AccessError`, …)."""

    def __init__(self, name: str, message: str, status: int | None = None):
        super().__init__(f"{name}: {message}")
        self.name, self.message, self.status = name, message, status

    @property
    def access_error(self) -> bool:
        return self.name.endswith("AccessError")

    @property
    def auth_error(self) -> bool:
        return self.name.endswith(("AccessDenied", "Unauthorized")) or self.status == 401


class OdooClient:
    """One Odoo database, one user; `call(model, method, *args, **kwargs)` whatever the protocol."""

    def __init__(self, url: str, db: str, login: str = "", password: str = "", api_key: str = "",
                 protocol: str = "auto", timeout: float = 30.0):
        self.url, self.db, self.login_name = url.rstrip("/"), db, login
        self.secret = api_key or password          # API keys replace passwords on the RPC protocols
        self.api_key = api_key
        self.protocol = protocol
        self.http = httpx.Client(base_url=self.url, timeout=timeout)
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
            raise OdooError(data.get("name") or f"jsonrpc.{err.get('code')}", data.get("message") or err.get("message", ""))
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
            raise OdooError(FAULT_KINDS.get(code, f"xmlrpc.{code}"), str(f.faultString).splitlines()[0][:300]) from None

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
                            r.status_code)
        return r.json()

    # -- authentication and calls -------------------------------------------------------------------------
    def authenticate(self) -> int:
        """Log in (JSON-RPC / XML-RPC): the uid, or OdooError AccessDenied on bad credentials."""
        proto = self.resolve_protocol()
        if proto == "json2":
            self.uid = self._json2("res.users", "context_get", None, {}).get("uid", 0) or -1
            return self.uid
        args = [self.db, self.login_name, self.secret]
        uid = self._xmlrpc("common", "login", tuple(args)) if proto == "xmlrpc" else self._jsonrpc("common", "login", args)
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
        if self.uid is None:
            self.authenticate()
        full_args = ([ids] if ids else []) + list(args or [])
        try:
            return self._rpc(proto, model, method, full_args, kwargs)
        except OdooError as e:
            if e.status == 404 and self.api_key and proto != "json2":      # deprecated endpoints gone: JSON-2
                self.protocol = "json2"
                return self.call(model, method, args, kwargs, ids)
            if "SessionExpired" in e.name:                                   # re-login once
                self.uid = None
                self.authenticate()
                return self._rpc(proto, model, method, full_args, kwargs)
            raise

    def _rpc(self, proto: str, model: str, method: str, args: list, kwargs: dict) -> Any:
        payload = [self.db, self.uid, self.secret, model, method, args, kwargs]
        if proto == "xmlrpc":
            return self._xmlrpc("object", "execute_kw", tuple(payload))
        return self._jsonrpc("object", "execute_kw", payload)

    # -- the ORM calls revwatch uses (arguments by name: JSON-2 requires it, execute_kw accepts it) -----------
    def search_read(self, model: str, domain: list, fields: list[str], order: str | None = None,
                    limit: int | None = None, offset: int = 0) -> list[dict]:
        kw: dict = {"domain": domain, "fields": fields, "offset": offset}
        if order:
            kw["order"] = order
        if limit:
            kw["limit"] = limit
        return self.call(model, "search_read", kwargs=kw)

    def search_count(self, model: str, domain: list) -> int:
        return self.call(model, "search_count", kwargs={"domain": domain})

    def count_by(self, model: str, domain: list, field: str) -> dict[Any, int]:
        """Record counts per value of `field`: read_group (16–18) or formatted_read_group (19+)."""
        if self.server_version()[0] >= 19:
            rows = self.call(model, "formatted_read_group",
                             kwargs={"domain": domain, "groupby": [field], "aggregates": ["__count"]})
        else:
            rows = self.call(model, "read_group",
                             kwargs={"domain": domain, "fields": [field], "groupby": [field], "lazy": False})
        out = {}
        for row in rows:
            value = row[field]
            if isinstance(value, list):             # many2one groups come as [id, name]
                value = value[1]
            out[value] = row.get("__count", row.get(f"{field}_count", 0))
        return out
