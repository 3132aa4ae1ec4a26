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

from revwatch.store import Store, StoreError
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
    """Create, verify and revoke API keys kept in the `api_keys` table.

    Verification reads an in-memory snapshot of the (small) keys table, refreshed every couple of seconds, so a
    request costs no query and ingest keeps authenticating through a store outage (the last good snapshot is
    used until the store answers again). Revocation through this object takes effect at once; revocation by
    another process within the refresh interval.
    """

    def __init__(self, store: Store):
        self.store = store
        self._snapshot: dict[str, tuple[str, str, str, int]] | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def preload(self) -> None:
        """Load the snapshot now (the server does this at start, before any outage can hide the keys)."""
        self._snapshot = None
        self._current()

    def _records(self) -> dict[str, tuple[str, str, str, int]]:
        rows = self.store.query(
            f"SELECT KeyId, argMax(Hash, Version), argMax(Scope, Version), argMax(Name, Version), "
            f"argMax(Revoked, Version) FROM {self.store.table('api_keys')} GROUP BY KeyId").rows
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def _current(self) -> dict[str, tuple[str, str, str, int]]:
        now = time.monotonic()
        if self._snapshot is None:
            snap = self._records()
            with self._lock:
                self._snapshot, self._loaded_at = snap, now
        elif now - self._loaded_at > _CACHE_SECONDS and self._refreshing.acquire(blocking=False):
            # Stale: refresh in the background and answer from the snapshot meanwhile, so a request never waits
            # on the store (a busy store must not hold ingest; issue #10).
            threading.Thread(target=self._refresh, name="revwatch-keys-refresh", daemon=True).start()
        return self._snapshot

    def _refresh(self) -> None:
        try:
            now = time.monotonic()
            snap = self._records()
            with self._lock:
                self._snapshot, self._loaded_at = snap, now
        except StoreError:
            pass                                      # store down: keep authenticating with what we knew
        finally:
            self._refreshing.release()

    def _write(self, key_id: str, h: str, scope: str, name: str, created, revoked: int) -> None:
        self.store.insert("api_keys", [(key_id, h, scope, name, created, revoked, time.time_ns())],
                          ["KeyId", "Hash", "Scope", "Name", "CreatedAt", "Revoked", "Version"])
        with self._lock:
            if self._snapshot is not None:
                self._snapshot = {**self._snapshot, key_id: (h, scope, name, revoked)}

    def create(self, scope: str, name: str = "") -> tuple[str, ApiKey]:
        """Create a key; returns the full key (shown once, never stored) and its record."""
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
        key_id = secrets.token_hex(4)
        token = f"rw_{key_id}_{secrets.token_urlsafe(32).replace('_', 'A')}"
        self._write(key_id, _hash(token), scope, name, utcnow(), 0)
        return token, ApiKey(key_id, scope, name)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when no such key exists."""
        rec = self._records().get(key_id)
        if rec is None:
            return False
        self._write(key_id, rec[0], rec[1], rec[2], utcnow(), 1)
        return True

    def list(self) -> list[dict]:
        """Every key's id, scope, name, creation time and revocation flag (never the hash)."""
        return self.store.query(
            f"SELECT KeyId AS id, argMax(Scope, Version) AS scope, argMax(Name, Version) AS name, "
            f"min(CreatedAt) AS created_at, argMax(Revoked, Version) AS revoked "
            f"FROM {self.store.table('api_keys')} GROUP BY KeyId ORDER BY created_at").dicts()

    def verify(self, token: str) -> ApiKey | None:
        """The key record for a presented key, or None when unknown or revoked."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        rec = self._current().get(key_id)
        if rec is None or rec[3] or not hmac.compare_digest(rec[0], _hash(token)):
            return None
        return ApiKey(key_id, rec[1], rec[2])

    def by_id(self, key_id: str) -> ApiKey | None:
        """The live (not revoked) key with this public id, or None: a browser session re-checks its key with it."""
        rec = self._current().get(key_id)
        if rec is None or rec[3]:
            return None
        return ApiKey(key_id, rec[1], rec[2])


def allows(key: ApiKey, scope: str) -> bool:
    """Whether a key's scope grants `scope` (admin grants everything)."""
    return key.scope == scope or key.scope == "admin"
