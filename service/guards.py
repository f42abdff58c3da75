"""Request guards that run before any body is read: the per-key rate limit, then a cap on the body.

FastAPI reads and parses a JSON body whole before the route and its dependencies run, and uvicorn sets no
body limit, so both guards are pure ASGI middleware:

- :class:`RateLimitMiddleware` charges the routes of :data:`BODY_ROUTES` (those with a JSON body) from the
  headers alone: a flood of invalid bodies is limited like valid ones, and a wrong key gets its 401 before
  its body is read. The two streamed uploads charge in their route, also before reading any byte.
- :class:`BodyLimitMiddleware` refuses a declared ``Content-Length`` over the cap at once (413) and reads at
  most the cap of a body sent without one (chunked). The streamed uploads (:data:`STREAMED_UPLOADS`) are
  passed through: they stream to disk under their own, larger caps (:mod:`service.uploads`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from mlac.errors import MlacError
from service.auth import presented_key
from service.errors import BadUploadError, PayloadTooLargeError, RateLimitedError, status_for
from service.state import AppState

#: Routes with a JSON body, by (method, path), and the rate-limit action each one is charged to.
BODY_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/v1/jobs"): "submit",
    ("POST", "/v1/jobs/estimate"): "submit",
    ("POST", "/v1/schedules"): "submit",
    ("POST", "/v1/datasets/synthetic"): "upload",
}
#: Routes that stream their multipart body to disk under their own caps (and charge the rate limit first).
STREAMED_UPLOADS = frozenset({("POST", "/v1/checkpoints"), ("POST", "/v1/datasets")})

Scope = dict[str, Any]
Message = dict[str, Any]


def route_key(scope: Scope) -> tuple[str, str]:
    """(method, path) of a request as the routes see it (without any ``root_path`` the server mounts it under)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return scope.get("method", ""), path


def error_response(exc: MlacError, redact: Callable[[str], str] | None = None) -> JSONResponse:
    """The one error shape, ``{"error": {"code", "message"}}``, with the status and headers of ``exc``;
    ``redact`` takes server paths out of the message (:class:`service.redact.PathRedactor`)."""
    status = status_for(exc)
    headers = {"Retry-After": str(int(exc.retry_after))} if isinstance(exc, RateLimitedError) else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    message = redact(str(exc)) if redact is not None else str(exc)
    return JSONResponse({"error": {"code": exc.code, "message": message}}, status_code=status, headers=headers)


class RateLimitMiddleware:
    """Authenticate and charge the rate limit of a :data:`BODY_ROUTES` request before its body is read."""

    def __init__(self, app: Any, state: Callable[[], AppState | None], routes: dict[tuple[str, str], str] = BODY_ROUTES) -> None:
        self.app, self.state, self.routes = app, state, routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        action = self.routes.get(route_key(scope)) if scope["type"] == "http" else None
        ctx = self.state() if action is not None else None
        if action is None or ctx is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw = presented_key(headers.get("authorization"), headers.get("x-api-key"))
        try:
            principal = ctx.keys.cached(raw)
            if principal is None:
                principal = await run_in_threadpool(ctx.keys.resolve, raw)
            ctx.limiter.hit(principal.key_id, action)
        except MlacError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes()`` (checked on Content-Length, or counted while reading a chunked one)."""

    def __init__(self, app: Any, max_bytes: Callable[[], int], exempt: frozenset[tuple[str, str]] = STREAMED_UPLOADS) -> None:
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or route_key(scope) in self.exempt:
            await self.app(scope, receive, send)
            return
        cap = self.max_bytes()
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                await error_response(BadUploadError("Content-Length is not a number"))(scope, receive, send)
            elif int(declared) > cap:
                await error_response(_too_large(f"a body of {declared} bytes", cap))(scope, receive, send)
            else:  # the server delivers no more than the declared length
                await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > cap:
                await error_response(_too_large("the body (stopped while reading)", cap))(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _too_large(what: str, cap: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{what} exceeds the cap of {cap} bytes on request bodies (MLAC_JSON_BODY_MAX_BYTES)")


def _replay(body: bytes, receive: Any) -> Callable[[], Any]:
    """A ``receive`` that hands the buffered body over once, then waits on the real one (for the disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
