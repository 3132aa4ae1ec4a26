"""API keys: created once, stored only as SHA-256 hashes in ClickHouse, checked per request with a scope.

A key looks like `rw_<id>_<secret>`: the id (8 hex chars) is safe to show and log, the secret never is.
Keys are 256-bit random, so a plain SHA-256 (not a slow password hash) is the right tool: there is nothing
to brute-force. Scopes: `ingest` (write telemetry), `read` (query), `admin` (everything, incl. keys).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from revwatch.store import Store
from revwatch.units import utcnow

SCOPES = ("ingest", "read", "admin")
_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    scope: str
    name: str


def _hash(secret_key: str) -> str:
    return hashlib.sha256(secret_key.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The public id part of a presented key, or None when it is not shaped like one of ours."""
    parts = token.split("_")
    if len(parts) == 3 and parts[0] == "rw" and len(parts[1]) == 8:
        return parts[1]
    return None


class KeyStore:
    """Create, verify and revoke API keys kept in the `api_keys` table."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, scope: str, name: str = "") -> tuple[str, ApiKey]:
        """Create a key; returns the full key (shown once, never stored) and its record."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        key_id = secrets.token_hex(4)
        token = f"rw_{key_id}_{secrets.token_urlsafe(32).replace('_', 'A')}"
        self.store.insert("api_keys", [(key_id, _hash(token), scope, name, utcnow(), 0, time.time_ns())],
                          ["KeyId", "Hash", "Scope", "Name", "CreatedAt", "Revoked", "Version"])
        return token, ApiKey(key_id, scope, name)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when no such key exists."""
        rows = self.store.query(f"SELECT argMax(Hash, Version), argMax(Scope, Version), argMax(Name, Version), "
                                f"argMax(CreatedAt, Version) FROM {self.store.table('api_keys')} "
                                f"WHERE KeyId = {{k:String}} GROUP BY KeyId", {"k": key_id}).rows
        if not rows:
            return False
        h, scope, name, created = rows[0]
        self.store.insert("api_keys", [(key_id, h, scope, name, created, 1, time.time_ns())],
                          ["KeyId", "Hash", "Scope", "Name", "CreatedAt", "Revoked", "Version"])
        with self._lock:
            self._cache.clear()
        return True

    def list(self) -> list[dict]:
        """Every key's id, scope, name, creation time and revocation flag (never the hash)."""
        return self.store.query(
            f"SELECT KeyId AS id, argMax(Scope, Version) AS scope, argMax(Name, Version) AS name, "
            f"argMax(CreatedAt, Version) AS created_at, argMax(Revoked, Version) AS revoked "
            f"FROM {self.store.table('api_keys')} GROUP BY KeyId ORDER BY created_at").dicts()

    def verify(self, token: str) -> ApiKey | None:
        """The key record for a presented key, or None when unknown or revoked."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
        if hit and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        rows = self.store.query(
            f"SELECT argMax(Hash, Version), argMax(Scope, Version), argMax(Name, Version), argMax(Revoked, Version) "
            f"FROM {self.store.table('api_keys')} WHERE KeyId = {{k:String}} GROUP BY KeyId", {"k": key_id}).rows
        found = None
        if rows and not rows[0][3] and hmac.compare_digest(rows[0][0], _hash(token)):
            found = ApiKey(key_id, rows[0][1], rows[0][2])
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, found)
        return found


def allows(key: ApiKey, scope: str) -> bool:
    """Whether a key's scope grants `scope` (admin grants everything)."""
    return key.scope == scope or key.scope == "admin"
