"""Browser sessions: a signed, expiring cookie that names the API key a person signed in with — never the key.

Invariants:
* The cookie holds the key's public id, its scope, a per-session CSRF token and the issue time, signed with
  itsdangerous (HMAC-SHA1 over a secret). It is `HttpOnly` (no script can read it), `SameSite=Strict` (no other
  site can send it) and `Secure` when the request came over HTTPS. It expires after `ui.session_ttl`, and the key
  behind it is checked on every request, so revoking the key ends its sessions.
* The signing secret comes from `ui.secret` / `$REVWATCH_UI_SECRET`, else it is generated once and kept in
  `<data_dir>/ui-secret` (mode 0600), so sessions survive a restart and differ per installation.
* Every state-changing UI request carries the session's CSRF token in a form field (or `X-CSRF-Token`), compared
  in constant time; a POST whose `Origin` names another site is refused before that.
"""
from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

COOKIE = "revwatch_session"
_SALT = "revwatch-ui-session"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a signed-in key (id and scope) or an anonymous kiosk viewer (`ui.public`)."""
    key_id: str | None
    scope: str
    csrf: str = ""

    @property
    def signed_in(self) -> bool:
        return self.key_id is not None

    @property
    def can_act(self) -> bool:
        """Only a signed-in person may change anything (acknowledge); a public kiosk is read-only."""
        return self.signed_in


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


class Sessions:
    """Issues and reads session cookies."""

    def __init__(self, secret: str, ttl_seconds: int):
        self.ttl = ttl_seconds
        self._ser = URLSafeTimedSerializer(secret, salt=_SALT)

    def issue(self, key_id: str, scope: str) -> str:
        """A new cookie value for a verified key (fresh CSRF token each sign-in)."""
        return self._ser.dumps({"k": key_id, "s": scope, "c": secrets.token_urlsafe(24), "t": int(time.time())})

    def read(self, value: str | None) -> Viewer | None:
        """The viewer of a cookie value, or None when missing, forged or expired."""
        if not value:
            return None
        try:
            data = self._ser.loads(value, max_age=self.ttl)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in ("k", "s", "c")):
            return None
        return Viewer(data["k"], data["s"], data["c"])


def csrf_ok(viewer: Viewer, presented: str | None) -> bool:
    """Whether a presented CSRF token is this session's (constant-time)."""
    return bool(viewer.csrf) and bool(presented) and hmac.compare_digest(viewer.csrf, presented or "")
