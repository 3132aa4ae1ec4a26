"""Browser sessions: a signed, expiring, revocable cookie that names the API key a person signed in with — never
the key.

Invariants:
* The cookie holds a random session id, the key's public id, its scope at sign-in, a per-session CSRF token and
  the session's expiry (Unix seconds), signed with itsdangerous (HMAC over a secret). It is `HttpOnly` (no script
  can read it), `SameSite=Strict` (no other site can send it) and `Secure` when the request came over HTTPS (as
  seen directly, or through a proxy listed in `server.trusted_proxies` — docs/http.md "Behind a proxy"). It
  expires after `ui.session_ttl` (checked against the injected clock, not trusted from the browser: the expiry is
  inside the signature).
* Signing out revokes the session id on the server (`Revocations`, kept in the store's `kv_state`), so a copied
  cookie dies with the sign-out, in this process at once and in other processes sharing the store within
  `Revocations.REFRESH_SECONDS`. The key behind a session is checked on every request, so revoking the key ends
  its sessions; the key's current scope (not the one at sign-in) decides what the session may do.
* The signing secret comes from `ui.secret` / `$REVWATCH_UI_SECRET`, else it is generated once and kept in
  `<data_dir>/ui-secret` (mode 0600), so sessions survive a restart and differ per installation.
* Every state-changing UI request carries the session's CSRF token in a form field (or `X-CSRF-Token`), compared
  in constant time; a POST whose `Origin` names another site is refused before that.
* `Sessions.read` is cheap and never touches the store (the revocation list is an in-memory snapshot), so the
  read gate (revwatch.priority) can verify a cookie before it lets a request queue as a credentialed reader.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Callable

from itsdangerous import BadSignature, URLSafeSerializer

from revwatch.store import Store, StoreError

COOKIE = "revwatch_session"
_SALT = "revwatch-ui-session"
_REVOKED_PREFIX = "ui-session-revoked:"
log = logging.getLogger("revwatch.webui")


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a signed-in key (id and scope) or an anonymous kiosk viewer (`ui.public`)."""
    key_id: str | None
    scope: str
    csrf: str = ""
    session_id: str = ""                 # '' for Bearer-key requests and kiosk viewers
    expires: int = 0                     # the session's expiry, Unix seconds (0: no session)

    @property
    def signed_in(self) -> bool:
        return self.key_id is not None

    @property
    def can_act(self) -> bool:
        """Only a signed-in person may change anything (sign out); a public kiosk is read-only."""
        return self.signed_in

    @property
    def can_acknowledge(self) -> bool:
        """Acknowledging an anomaly needs an admin key, in the UI as in the API (`POST /api/v1/anomalies/{id}/ack`)."""
        return self.signed_in and self.scope == "admin"


def load_secret(configured: str | None, data_dir: str | os.PathLike) -> str:
    """The signing secret: configured, from the environment, or generated once and persisted in the data dir."""
    if configured:
        return configured
    if os.environ.get("REVWATCH_UI_SECRET"):
        return os.environ["REVWATCH_UI_SECRET"]
    path = Path(data_dir) / "ui-secret"
    try:
        text = path.read_text().strip()
        if len(text) >= 32:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


class Revocations:
    """Session ids ended by signing out, kept in the store (`kv_state`, key `ui-session-revoked:<id>`, value the
    session's expiry) and mirrored in memory.

    Checking is a set lookup (no query per request); the snapshot is reloaded in the background every
    REFRESH_SECONDS, so a sign-out in another process sharing the store takes effect within that. Entries past
    their session's expiry are dropped from the snapshot (the signature check refuses those cookies anyway). A
    store outage keeps the last snapshot; a revocation that cannot be written is still held in this process."""

    REFRESH_SECONDS = 2.0

    def __init__(self, store: Store | None, clock: Callable[[], float] = time.time):
        self.store, self.clock = store, clock
        self._ids: dict[str, int] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def _load(self) -> dict[str, int]:
        if self.store is None:
            return {}
        rows = self.store.query(
            f"SELECT Key, argMax(Value, Version) FROM {self.store.table('kv_state')} "
            f"WHERE startsWith(Key, {{p:String}}) GROUP BY Key", {"p": _REVOKED_PREFIX}).rows
        now = self.clock()
        out = {}
        for key, value in rows:
            try:
                expires = int(value)
            except ValueError:
                continue
            if expires > now:
                out[key[len(_REVOKED_PREFIX):]] = expires
        return out

    def _refresh(self) -> None:
        try:
            loaded = self._load()
            with self._lock:
                self._ids = {**loaded, **{k: v for k, v in self._ids.items() if k not in loaded}}
                self._loaded_at = time.monotonic()
        except StoreError as e:
            self._loaded_at = time.monotonic()           # retried in the background, not on every request
            log.warning("cannot reload revoked UI sessions (keeping the last list): %s", e)
        finally:
            self._refreshing.release()

    def preload(self) -> None:
        """Load the list now (the server does this at start, so no request waits for it)."""
        self._refreshing.acquire()
        self._refresh()

    def is_revoked(self, session_id: str) -> bool:
        """Whether the session was signed out (here, or elsewhere up to REFRESH_SECONDS ago)."""
        if self._loaded_at is None:
            if self._refreshing.acquire():
                self._refresh()                          # first use: load synchronously
        elif time.monotonic() - self._loaded_at > self.REFRESH_SECONDS and self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._refresh, name="revwatch-ui-revocations", daemon=True).start()
        with self._lock:
            return session_id in self._ids

    def revoke(self, session_id: str, expires: int) -> None:
        """End a session now, in memory at once and durably in the store."""
        with self._lock:
            self._ids[session_id] = expires
        if self.store is None:
            return
        try:
            self.store.put_state(_REVOKED_PREFIX + session_id, str(expires))
        except StoreError as e:
            log.warning("sign-out recorded in this process only (the store refused it): %s", e)


class Sessions:
    """Issues and reads session cookies."""

    def __init__(self, secret: str, ttl_seconds: int, revocations: Revocations | None = None,
                 clock: Callable[[], float] = time.time):
        self.ttl, self.clock = ttl_seconds, clock
        self.revocations = revocations or Revocations(None, clock)
        self._ser = URLSafeSerializer(secret, salt=_SALT)

    def issue(self, key_id: str, scope: str) -> str:
        """A new cookie value for a verified key (fresh session id and CSRF token each sign-in)."""
        return self._ser.dumps({"i": secrets.token_urlsafe(18), "k": key_id, "s": scope,
                                "c": secrets.token_urlsafe(24), "e": int(self.clock()) + self.ttl})

    def read(self, value: str | None) -> Viewer | None:
        """The viewer of a cookie value, or None when missing, forged, expired or signed out."""
        if not value:
            return None
        try:
            data = self._ser.loads(value)
        except BadSignature:
            return None
        if (not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in ("i", "k", "s", "c"))
                or not isinstance(data.get("e"), int)):
            return None
        if data["e"] <= self.clock() or self.revocations.is_revoked(data["i"]):
            return None
        return Viewer(data["k"], data["s"], data["c"], data["i"], data["e"])

    def end(self, viewer: Viewer) -> None:
        """Sign a session out on the server: its cookie is refused from now on, wherever it was copied to."""
        if viewer.session_id:
            self.revocations.revoke(viewer.session_id, viewer.expires)

    def from_cookie_header(self, header: bytes | str) -> Viewer | None:
        """The session of a raw `Cookie` header (the read gate sees headers, not a parsed request)."""
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        if COOKIE not in text:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(text)
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        return self.read(morsel.value) if morsel is not None else None


def csrf_ok(viewer: Viewer, presented: str | None) -> bool:
    """Whether a presented CSRF token is this session's (constant-time)."""
    return bool(viewer.csrf) and bool(presented) and hmac.compare_digest(viewer.csrf, presented or "")
