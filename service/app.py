"""The FastAPI application: ``create_app(settings)``; everything live is built in the lifespan.

Run it with ``mlac-audit serve`` or ``uvicorn --factory service.app:create_app`` (settings from the
environment). Tests pass their own settings, store, runner or clocks.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlac import __version__
from mlac.errors import MlacError
from service.auth import KeyResolver
from service.deps import DocsPrincipalDep
from service.dispatcher import Dispatcher
from service.egress import EgressPolicy
from service.env_check import unknown_variables
from service.guards import BodyLimitMiddleware, RateLimitMiddleware, error_response
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.quotas import limits_for
from service.ratelimit import RateLimiter
from service.routes import checkpoints, comparisons, datasets, exports, health, jobs, keys, schedules
from service.routes import webhooks as webhook_routes
from service.runners import InProcessRunner, RayRunner, Runner
from service.scheduler import Scheduler, utcnow
from service.settings import Settings
from service.state import AppState, bootstrap_admin
from service.store import JobStore, get_store
from service.ui.routes import install_ui
from service.webhooks import WebhookSender

log = logging.getLogger(__name__)

DESCRIPTION = """Robustness audits of ML models: upload checkpoints and datasets, run MLAC censoring and few-shot
adversarial fine-tuning audits, and fetch curves, figures and audit cards. Every route but `/v1/health` needs an
API key (`Authorization: Bearer <key>` or `X-API-Key`), this schema and `/docs` included (in a browser, sign in at
`/ui/login` first: the web view's session cookie opens `/docs` and `/ui`, never `/v1`). Errors are
`{"error": {"code": ..., "message": ...}}`."""


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON error shape."""

    @app.exception_handler(MlacError)
    async def mlac_error(request: Request, exc: MlacError) -> JSONResponse:
        ctx = getattr(request.app.state, "ctx", None)
        return error_response(exc, ctx.redactor.text if ctx is not None else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()[:20]]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return JSONResponse({"error": {"code": "validation_error", "message": message, "details": details}}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal", "internal error (logged on the server)")


def install_docs(app: FastAPI) -> None:
    """``GET /openapi.json`` and ``GET /docs`` (Swagger UI), behind the API key or the web view's session cookie.

    A browser sends no ``Authorization`` header by itself: sign in at ``/ui/login`` (the cookie is taken here and
    in ``/ui`` only, never by ``/v1``), or fetch the schema with curl (``-H "Authorization: Bearer $KEY"``).
    Swagger UI's files come from the ``fastapi-offline`` package (``/ui/static/swagger/``): the page works
    offline. "Try it out" calls ``/v1`` and so needs the key entered under "Authorize".
    """

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_schema(principal: DocsPrincipalDep) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(principal: DocsPrincipalDep) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API docs",
                                   swagger_js_url="/ui/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/ui/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/ui/static/swagger/favicon.png")


def optuna_storage(store: JobStore, runner: str) -> str | None:
    """Where the audits' Optuna studies go: the job store's database ("Optuna studies in the same database"),
    except for the Ray runner on SQLite, whose drivers keep them in each job's ``audit/optuna.db`` (the store's
    file is local to the API process's host; a driver actor may run on another node)."""
    if runner == "ray" and getattr(store, "backend", None) != "postgresql":
        return None
    return store.url


def build_state(settings: Settings, *, store: JobStore | None, runner: Runner | None,
                scheduler_clock: Callable[[], datetime] | None) -> AppState:
    """Build the live objects from settings (pieces passed in are used as they are)."""
    unknown = unknown_variables(os.environ)
    if unknown:  # Settings ignores unknown names: say so rather than run on a default the user meant to change
        log.warning("ignoring environment variable(s) nothing reads: %s", "; ".join(str(u) for u in unknown))
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)  # keys, secrets, uploads and Ray's sockets live inside: owner only
    shutil.rmtree(settings.data_dir / "staging", ignore_errors=True)  # half-finished uploads of a crashed process
    store = store or get_store(settings.db_url)
    bootstrap_admin(store, settings)
    metrics = ServiceMetrics()
    webhooks = WebhookSender(store, EgressPolicy.from_entries(settings.webhook_allow), timeout_s=settings.webhook_timeout_s,
                             retries=settings.webhook_retries, backoff_s=settings.webhook_backoff_s,
                             workers=settings.webhook_workers, metrics=metrics)
    if runner is None:
        if settings.runner == "ray":
            runner = RayRunner(settings.artifact_root, settings.data_dir, address=settings.ray_address,
                               num_cpus=settings.ray_num_cpus, max_concurrency=settings.max_concurrency,
                               storage_url=optuna_storage(store, settings.runner))
        else:
            runner = InProcessRunner(settings.artifact_root, storage_url=optuna_storage(store, "inprocess"))
    dispatcher = Dispatcher(store, runner, lease_s=settings.lease_s, max_running=settings.max_running_jobs,
                            poll_s=min(2.0, settings.lease_s / 5), webhooks=webhooks, metrics=metrics)
    scheduler = Scheduler(store, instance=dispatcher.owner_id, clock=scheduler_clock or utcnow,
                          interval_s=settings.scheduler_interval_s, on_fired=lambda job: dispatcher.wake(),
                          max_active=lambda owner: limits_for(store.get_api_key(owner), settings).max_active_jobs)
    limiter = RateLimiter({"submit": settings.rate_submit_per_min, "upload": settings.rate_upload_per_min}, settings.rate_burst)
    return AppState(settings=settings, store=store, runner=runner, keys=KeyResolver(store), limiter=limiter, metrics=metrics,
                    webhooks=webhooks, dispatcher=dispatcher, scheduler=scheduler)


def create_app(settings: Settings | None = None, *, store: JobStore | None = None, runner: Runner | None = None,
               scheduler_clock: Callable[[], datetime] | None = None, background: bool = True) -> FastAPI:
    """The ASGI app. ``background=False`` leaves the dispatcher and scheduler loops to the caller (tests)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = build_state(settings or Settings(), store=store, runner=runner, scheduler_clock=scheduler_clock)
        app.state.ctx = state
        if background:
            state.dispatcher.start()
            state.webhooks.start()
            if state.settings.scheduler_enabled:
                state.scheduler.start()
        log.info("mlac-audit service ready (store %s, runner %s)", type(state.store).__name__, state.runner.name)
        try:
            yield
        finally:
            state.scheduler.stop()
            state.dispatcher.shutdown()
            state.webhooks.close()
            if store is None:
                state.store.close()

    # The docs routes are our own so that they need a key like every route but health (the rule):
    # FastAPI's built-in /docs, /redoc and /openapi.json would be public.
    app = FastAPI(title="mlac-audit", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_docs(app)

    def current_state() -> AppState | None:
        return getattr(app.state, "ctx", None)

    def current_metrics() -> ServiceMetrics | None:
        ctx = current_state()
        return ctx.metrics if ctx is not None else None

    def body_cap() -> int:
        ctx = current_state()
        return ctx.settings.json_body_max_bytes if ctx is not None else int(Settings.model_fields["json_body_max_bytes"].default)

    # Outermost first: metrics see every request; the rate limit and then the body cap run before any body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_cap)
    app.add_middleware(RateLimitMiddleware, state=current_state)
    app.add_middleware(MetricsMiddleware, metrics=current_metrics)
    for module in (health, checkpoints, datasets, jobs, exports, comparisons, schedules, keys, webhook_routes):
        app.include_router(module.router)
    install_ui(app)  # the web view (/ui): plain routes with cookie sessions, outside the API schema
    return app
