"""Typed dependencies of the routes (``StateDep``, ``PrincipalDep``, ``DocsPrincipalDep``, ``AdminDep``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from service.auth import Principal
from service.errors import ForbiddenError
from service.state import AppState

bearer_scheme = HTTPBearer(auto_error=False, description="API key as a bearer token")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


async def get_state(request: Request) -> AppState:
    """The app's state (built in the lifespan). ``async`` (like every dependency here that does no I/O) so that
    FastAPI calls it on the event loop instead of sending it to the thread pool."""
    return request.app.state.ctx  # type: ignore[no-any-return]


StateDep = Annotated[AppState, Depends(get_state)]


async def get_principal(
    state: StateDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(header_scheme)],
) -> Principal:
    """The caller, from ``Authorization: Bearer`` or ``X-API-Key``; 401 otherwise."""
    raw = bearer.credentials if bearer is not None else api_key
    cached = state.keys.cached(raw)
    if cached is not None:
        return cached
    return await run_in_threadpool(state.keys.resolve, raw)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_docs_principal(
    request: Request,
    state: StateDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(header_scheme)],
) -> Principal:
    """``/docs`` and ``/openapi.json`` only: the key in a header, or else the web view's session cookie (a browser
    sends no header by itself). These are read-only GETs; the JSON API never takes the cookie, so a cross-site
    request cannot act through it. A header that is sent wins (a wrong one is a 401 even with a cookie)."""
    if bearer is None and api_key is None:
        from service.ui.sessions import session_of

        found = await run_in_threadpool(session_of, state, request)
        if found is not None:
            return found[1]
    return await get_principal(state, bearer, api_key)


DocsPrincipalDep = Annotated[Principal, Depends(get_docs_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """403 unless the caller holds the admin key."""
    if not principal.is_admin:
        raise ForbiddenError("this needs the admin API key")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
