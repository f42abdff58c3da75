"""API keys: generated at random, stored as their sha256, compared in constant time.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The store is asked for the
row whose hash equals the hash of the presented key (an index lookup), and the two hashes are then
compared with :func:`hmac.compare_digest`. A short in-memory cache keeps hot keys off the database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from service.errors import UnauthorizedError
from service.store import JobStore
from service.store.records import ApiKey

KEY_PREFIX = "mlac_"


def generate_key() -> str:
    """A new random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw: str) -> str:
    """The stored form of a key: hex sha256 (keys are random, so no salt or slow hash is needed)."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key id, and whether it is the admin (sees every owner's rows)."""

    key_id: str
    name: str
    is_admin: bool

    @property
    def owner_filter(self) -> str | None:
        """What store queries filter on: None for the admin (all rows), else the key id."""
        return None if self.is_admin else self.key_id


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from either header (Bearer token first)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


class KeyResolver:
    """Turns a presented key into a :class:`Principal` (or raises 401)."""

    def __init__(self, store: JobStore, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def cached(self, raw: str | None) -> Principal | None:
        """The principal when the key is in the cache (no database access), else None."""
        if not raw or len(raw) > 512:
            return None
        digest = hash_key(raw)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is None or hit[1] <= time.monotonic() or not hmac.compare_digest(hit[0].key_hash.encode(), digest.encode()):
            return None
        return Principal(key_id=hit[0].id, name=hit[0].name, is_admin=hit[0].is_admin)

    def resolve(self, raw: str | None) -> Principal:
        """The caller's principal; UnauthorizedError for a missing, unknown or revoked key."""
        if not raw or len(raw) > 512:
            raise UnauthorizedError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        digest = hash_key(raw)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        key = hit[0] if hit is not None and hit[1] > now else self.store.api_key_by_hash(digest)
        if key is None or not hmac.compare_digest(key.key_hash.encode(), digest.encode()):
            raise UnauthorizedError("invalid API key")
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (key, now + self.cache_s)
        return Principal(key_id=key.id, name=key.name, is_admin=key.is_admin)

    def forget(self) -> None:
        """Drop the cache (after a key is revoked)."""
        with self._lock:
            self._cache.clear()
