"""Web view sessions: an opaque cookie that stands for a key id, kept in this process's memory.

Signing in (``POST /ui/login`` with an API key) resolves the key like the API does and creates a session: a
random 256-bit id that goes into an ``HttpOnly; SameSite=Strict; Path=/`` cookie (``Secure`` over https). The
server keeps only the id's sha256, mapped to the key id, a per-session CSRF token, and the times; the raw key is
neither stored nor sent back. Every request re-reads the key row, so a revoked key ends its sessions at once.

Limits (documented in the README): sessions live in this process's memory, so a restart signs everyone out and
several API replicas need sticky sessions; at most :data:`MAX_SESSIONS` sessions are kept (the oldest go first);
a session ends after :data:`IDLE_S` without a request or :data:`MAX_AGE_S` after sign-in.

The cookie authenticates only the web view (``/ui``), ``/docs`` and ``/openapi.json``: the JSON API under
``/v1`` keeps requiring the key in a header, so a forged cross-site request can never act through the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from service.auth import Principal
from service.errors import NotFoundError
from service.state import AppState

COOKIE = "mlac_session"
#: the pre-sign-in cookie whose value the sign-in form must echo (double submit, against login CSRF)
LOGIN_COOKIE = "mlac_login"
IDLE_S = 8 * 3600.0
MAX_AGE_S = 24 * 3600.0
MAX_SESSIONS = 10_000
EXTRA_KEY = "ui_sessions"


@dataclass(frozen=True)
class Session:
    """One signed-in browser."""

    key_id: str
    csrf: str
    created: float
    seen: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore:
    """Session id (its sha256) -> :class:`Session`, thread-safe, bounded, expiring."""

    def __init__(self, clock: object = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rows: dict[str, Session] = {}

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def create(self, key_id: str) -> tuple[str, Session]:
        """A new session for ``key_id``: the cookie value (returned once) and the row."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        row = Session(key_id=key_id, csrf=secrets.token_urlsafe(24), created=now, seen=now)
        with self._lock:
            if len(self._rows) >= MAX_SESSIONS:
                for old in sorted(self._rows, key=lambda d: self._rows[d].seen)[: len(self._rows) - MAX_SESSIONS + 1]:
                    del self._rows[old]
            self._rows[_digest(token)] = row
        return token, row

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value (and mark it seen), else None."""
        if not token or len(token) > 200:
            return None
        digest, now = _digest(token), self._now()
        with self._lock:
            row = self._rows.get(digest)
            if row is None:
                return None
            if now - row.seen > IDLE_S or now - row.created > MAX_AGE_S:
                del self._rows[digest]
                return None
            row = replace(row, seen=now)
            self._rows[digest] = row
        return row

    def drop(self, token: str | None) -> None:
        """Sign out: forget the session."""
        if token:
            with self._lock:
                self._rows.pop(_digest(token), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)


def sessions(state: AppState) -> SessionStore:
    """The app's session store (made on first use, kept in ``state.extra``)."""
    found = state.extra.get(EXTRA_KEY)
    if not isinstance(found, SessionStore):
        found = state.extra.setdefault(EXTRA_KEY, SessionStore())
    assert isinstance(found, SessionStore)
    return found


def session_of(state: AppState, conn: HTTPConnection) -> tuple[Session, Principal] | None:
    """The request's session and the principal it stands for; None without a live session or when its key
    has been revoked or deleted since."""
    row = sessions(state).get(conn.cookies.get(COOKIE))
    if row is None:
        return None
    try:
        key = state.store.get_api_key(row.key_id)
    except NotFoundError:
        return None
    if key.revoked:
        sessions(state).drop(conn.cookies.get(COOKIE))
        return None
    return row, Principal(key_id=key.id, name=key.name, is_admin=key.is_admin)


def csrf_ok(session: Session, presented: object) -> bool:
    """Whether a form's CSRF field matches the session's token (constant time)."""
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), session.csrf.encode())


def same_origin(conn: HTTPConnection) -> bool:
    """False when the request names another site in ``Origin`` (or, without it, ``Referer``): a cross-site form
    post. The host and port are compared with the request's ``Host`` (not the scheme, which a TLS-terminating
    proxy changes). Requests that send neither header (not a browser) pass; the CSRF token still has to match."""
    origin = conn.headers.get("origin") or conn.headers.get("referer")
    if not origin:
        return True
    parts = urlsplit(origin)
    own = conn.headers.get("host") or conn.url.netloc
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == own.lower()


def cookie_flags(conn: HTTPConnection) -> dict[str, object]:
    """``set_cookie`` keyword arguments of every web-view cookie."""
    return {"httponly": True, "samesite": "strict", "secure": conn.url.scheme == "https", "path": "/"}
