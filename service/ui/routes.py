"""The web view's routes (``/ui``): sign in with an API key, jobs with live progress, reports, comparisons, schedules.

These are plain Starlette routes, outside the API schema: they authenticate with the session cookie
(:mod:`service.ui.sessions`) and answer pages, not JSON. What they show comes from the same functions as the
API's routes (``service.routes.jobs`` / ``schedules``) with the same owner filter, so another key's job or
schedule is a 404 here too and the admin sees everything. Every POST needs the session's CSRF token and a
same-origin ``Origin``; the sign-in form needs the value of its pre-sign-in cookie instead.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from mlac.errors import MlacError
from mlac.jobs import audits as job_audits
from service.auth import Principal
from service.errors import NotFoundError, status_for
from service.routes import jobs as job_routes
from service.routes import schedules as schedule_routes
from service.state import AppState
from service.store.records import TERMINAL
from service.ui import pages
from service.ui.live import LiveFold, LiveView
from service.ui.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    MAX_AGE_S,
    Session,
    cookie_flags,
    csrf_ok,
    same_origin,
    session_of,
    sessions,
)

STATIC = Path(__file__).with_name("static")
STATIC_FILES = {"ui.css": "text/css", "ui.js": "text/javascript"}
SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
JOB_ID = re.compile(r"^job_[0-9a-f]{20}$")
SCHEDULE_ID = re.compile(r"^sch_[0-9a-f]{20}$")
FIGURE = re.compile(r"^[a-z_]{1,40}$")
#: where a sign-in may send the browser next (own pages only: no open redirect)
NEXT = re.compile(r"^/(?:ui|docs)(?:/[A-Za-z0-9_\-./]*)?$")
#: pages may load only this server's files; the script only talks to this server
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: the audit card is self-contained (inline style, data: images) and runs no script
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"
SSE_POLL_S = 0.5
Signed = tuple[Session, Principal]


def state_of(request: Request) -> AppState:
    """The app's live objects."""
    return request.app.state.ctx  # type: ignore[no-any-return]


def page(body: str, status: int = 200) -> HTMLResponse:
    """An HTML answer with the pages' security headers."""
    return HTMLResponse(body, status_code=status, headers={
        "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store"})


def to_login(request: Request) -> RedirectResponse:
    """303 to the sign-in form, coming back here afterwards (GET pages only)."""
    target = request.url.path if request.method == "GET" and NEXT.match(request.url.path) else "/ui/jobs"
    return RedirectResponse(f"/ui/login?next={target}", status_code=303)


Handler = Callable[[Request, AppState, Session, Principal], Awaitable[Response]]


def signed_in(handler: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page handler: resolve the session (else to the sign-in form), check CSRF on POST, and show
    errors (404 for another key's id, 409, ...) as pages."""

    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        found = await run_in_threadpool(session_of, state, request)
        if found is None:
            if post:
                return page(pages.error_page(401, "Your session has ended: sign in again."), 401)
            return to_login(request)
        session, principal = found
        if post:
            form = await request.form()
            if not same_origin(request) or not csrf_ok(session, form.get("csrf")):
                return page(pages.error_page(403, "This form is stale or came from another site: reload the page.",
                                             principal, session.csrf), 403)
        try:
            return await handler(request, state, session, principal)
        except MlacError as exc:
            status = status_for(exc)
            return page(pages.error_page(status, state.redactor.text(str(exc)), principal, session.csrf), status)

    return endpoint


def _id(request: Request, name: str, pattern: re.Pattern[str]) -> str:
    value = str(request.path_params[name])
    if not pattern.match(value):
        raise NotFoundError(f"no such {name.removesuffix('_id')} {value[:40]!r}")
    return value


# -- sign in / out

async def login_form(request: Request) -> Response:
    """The sign-in form; sets the pre-sign-in cookie the form echoes back."""
    state = state_of(request)
    next_url = request.query_params.get("next", "/ui/jobs")
    if await run_in_threadpool(session_of, state, request) is not None:
        return RedirectResponse(next_url if NEXT.match(next_url) else "/ui/jobs", status_code=303)
    token = secrets.token_urlsafe(24)
    response = page(pages.login_page(token, None, next_url if NEXT.match(next_url) else "/ui/jobs"))
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, **cookie_flags(request))  # type: ignore[arg-type]
    return response


async def login(request: Request) -> Response:
    """Check the pasted key like the API does; on success a session cookie and 303 to ``next``."""
    state = state_of(request)
    form = await request.form()
    cookie = request.cookies.get(LOGIN_COOKIE)
    token = form.get("login_token")
    next_url = str(form.get("next") or "/ui/jobs")
    next_url = next_url if NEXT.match(next_url) else "/ui/jobs"
    fresh = secrets.token_urlsafe(24)

    def again(status: int, message: str) -> Response:
        response = page(pages.login_page(fresh, message, next_url), status)
        response.set_cookie(LOGIN_COOKIE, fresh, max_age=3600, **cookie_flags(request))  # type: ignore[arg-type]
        return response

    if not same_origin(request) or not cookie or not isinstance(token, str) or not secrets.compare_digest(
            cookie.encode(), token.encode()):
        return again(403, "The sign-in form was stale or came from another site: try again.")
    raw = form.get("api_key")
    try:
        principal = await run_in_threadpool(state.keys.resolve, raw.strip() if isinstance(raw, str) else None)
    except MlacError as exc:
        return again(status_for(exc), "That API key is not valid (unknown or revoked).")
    sessions(state).drop(request.cookies.get(COOKIE))  # signing in again replaces the old session
    value, _ = sessions(state).create(principal.key_id)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(COOKIE, value, max_age=int(MAX_AGE_S), **cookie_flags(request))  # type: ignore[arg-type]
    response.delete_cookie(LOGIN_COOKIE, **cookie_flags(request))  # type: ignore[arg-type]
    return response


async def logout(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """End the session (server side) and clear the cookie."""
    sessions(state).drop(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, **cookie_flags(request))  # type: ignore[arg-type]
    return response


async def home(request: Request) -> Response:
    """``/ui`` -> the jobs list."""
    return RedirectResponse("/ui/jobs", status_code=303)


# -- jobs

async def jobs_list(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """Your jobs (all of them for the admin), newest first, 50 a page."""
    raw = request.query_params.get("offset", "0")
    offset = min(int(raw), 1_000_000) if raw.isdigit() else 0
    limit = 50
    items, total = await run_in_threadpool(state.store.list_jobs, principal.owner_filter, limit=limit, offset=offset)
    views = [job_routes.view(state, j) for j in items]
    owners = {k.id: k.name for k in await run_in_threadpool(state.store.list_api_keys)} if principal.is_admin else {}
    return page(pages.jobs_page(views, total, offset, limit, principal, session.csrf, owners))


def fold_events(state: AppState, job_id: str) -> tuple[LiveFold, int]:
    """Every stored event of the job folded (what the page shows on load), and the last sequence number."""
    fold, seq = LiveFold(), 0
    while True:
        batch = state.store.events_since(job_id, seq)
        for event in batch:
            fold.apply(state.redactor.json(event.payload), event.t)
            seq = event.seq
        if not batch:
            return fold, seq


def key_name(state: AppState, key_id: str) -> str | None:
    """The name of a job's key (the admin's pages show it), None when the key is gone."""
    try:
        return state.store.get_api_key(key_id).name
    except NotFoundError:
        return None


async def job_detail(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """One job with its live panel, curves and report link."""
    job_id = _id(request, "job_id", JOB_ID)
    job = await run_in_threadpool(state.store.get_job, job_id, principal.owner_filter)
    fold, _ = await run_in_threadpool(fold_events, state, job_id)
    view = job_routes.view(state, job)
    folder = Path(job.result_path) if job.state == "SUCCEEDED" and job.result_path else None
    has_report = folder is not None and (folder / "report.html").is_file()
    has_curves = folder is not None and (folder / "curves.png").is_file()
    now: LiveView = fold.view
    if now.stage is None:
        now.stage = view.progress.stage
    owner = await run_in_threadpool(key_name, state, job.owner) if principal.is_admin else None
    return page(pages.job_page(view, now, principal, session.csrf, has_report, has_curves, owner))


async def job_events(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """Server-Sent Events for the page: ``progress`` (the folded live view after each batch of job events), then
    ``end`` (state, verdict, error). GET only, read-only: the JSON API's stream keeps requiring the key."""
    job_id = _id(request, "job_id", JOB_ID)
    store, redactor = state.store, state.redactor
    await run_in_threadpool(store.get_job, job_id, principal.owner_filter)

    async def stream() -> AsyncIterator[str]:
        fold, seq, idle = LiveFold(), 0, 0
        while True:
            events = await run_in_threadpool(store.events_since, job_id, seq)
            for event in events:
                fold.apply(redactor.json(event.payload), event.t)
                seq = event.seq
            if events:
                idle = 0
                yield f"id: {seq}\nevent: progress\ndata: {pages.as_json(fold.view.to_json())}\n\n"
                continue
            job = await run_in_threadpool(store.get_job, job_id, None)
            if job.state in TERMINAL:
                shown = job_routes.view(state, job)
                end = {"state": job.state, "verdict": job.verdict, "error": shown.error,
                       "finished": pages.when(job.finished_at) if job.finished_at else None}
                yield f"event: end\ndata: {pages.as_json(end)}\n\n"
                return
            idle += 1
            if idle % 30 == 0:
                yield ": keep-alive\n\n"
            await asyncio.sleep(SSE_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def job_cancel(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """Cancel (the API's cancel), back to the job page."""
    job_id = _id(request, "job_id", JOB_ID)
    await run_in_threadpool(job_routes.cancel_job, job_id, state, principal)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


async def job_report(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """The audit card (redacted, as the API serves it), scripts off."""
    job_id = _id(request, "job_id", JOB_ID)
    answer = await run_in_threadpool(job_routes.job_report, job_id, state, principal)
    body = bytes(answer.body).decode("utf-8").replace("<body>", pages.report_banner(job_id), 1)
    return HTMLResponse(body, headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                                              "Cache-Control": "no-store"})


async def job_result(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """The result JSON (redacted, as the API serves it)."""
    job_id = _id(request, "job_id", JOB_ID)
    answer = await run_in_threadpool(job_routes.job_result, job_id, state, principal)
    return Response(answer.body, media_type="application/json", headers={"X-Content-Type-Options": "nosniff"})


async def job_figure(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """A figure of the audit (``curves``, ``attack_budget``)."""
    job_id = _id(request, "job_id", JOB_ID)
    name = _id(request, "name", FIGURE)
    answer: FileResponse = await run_in_threadpool(job_routes.job_figure, job_id, name, state, principal)
    answer.headers["Cache-Control"] = "no-store"
    return answer


# -- comparisons

def _compare_html(state: AppState, job_a: str, job_b: str, model_a: str | None, model_b: str | None,
                  principal: Principal) -> str:
    from mlac.audit.compare_report import comparison_html
    from service.routes.comparisons import comparison_of

    found = comparison_of(state, job_a, job_b, principal.owner_filter, model_a=model_a, model_b=model_b)
    return state.redactor.text(comparison_html(found))


async def compare_view(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """With ``?a=&b=`` the comparison page (self-contained, no script); without, the form that picks them."""
    q = request.query_params
    job_a, job_b = q.get("a", ""), q.get("b", "")
    if not job_a or not job_b or q.get("edit"):
        items, _ = await run_in_threadpool(lambda: state.store.list_jobs(principal.owner_filter, state="SUCCEEDED",
                                                                          limit=200, offset=0))
        audits = [job_routes.view(state, j) for j in items if job_audits(j.kind)]
        return page(pages.compare_page(audits, principal, session.csrf, (job_a, job_b)))
    for value in (job_a, job_b):
        if not JOB_ID.match(value):
            raise NotFoundError(f"no such job {value[:40]!r}")
    html = await run_in_threadpool(_compare_html, state, job_a, job_b, q.get("model_a") or None, q.get("model_b") or None,
                                   principal)
    body = html.replace("<body>", pages.compare_banner(job_a, job_b), 1)
    return HTMLResponse(body, headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                                       "Cache-Control": "no-store"})


# -- schedules

async def schedules_list(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """Your schedules with their state, next and last run."""
    answer = await run_in_threadpool(schedule_routes.list_schedules, state, principal, 200, 0)
    return page(pages.schedules_page(answer.items, answer.total, principal, session.csrf))


def _schedule_with_jobs(state: AppState, schedule_id: str, principal: Principal) -> tuple[Any, dict[str, Any]]:
    shown = schedule_routes.get_schedule(schedule_id, state, principal)
    items, _ = state.store.list_jobs(principal.owner_filter, schedule_id=schedule_id, limit=200, offset=0)
    return shown, {j.id: job_routes.view(state, j) for j in items}


async def schedule_detail(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
    """One schedule with its history (the jobs it fired, their state and verdict)."""
    schedule_id = _id(request, "schedule_id", SCHEDULE_ID)
    shown, jobs = await run_in_threadpool(_schedule_with_jobs, state, schedule_id, principal)
    return page(pages.schedule_page(shown, jobs, principal, session.csrf))


def _toggle(resume: bool) -> Handler:
    async def handler(request: Request, state: AppState, session: Session, principal: Principal) -> Response:
        schedule_id = _id(request, "schedule_id", SCHEDULE_ID)
        action = schedule_routes.resume_schedule if resume else schedule_routes.pause_schedule
        await run_in_threadpool(action, schedule_id, state, principal)
        return RedirectResponse(f"/ui/schedules/{schedule_id}", status_code=303)

    handler.__doc__ = "Resume the schedule." if resume else "Pause the schedule."
    return handler


# -- static files (public: no data in them)

async def static_file(request: Request) -> Response:
    """The view's stylesheet and script."""
    name = str(request.path_params["name"])
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


async def swagger_file(request: Request) -> Response:
    """Swagger UI's files, as the ``fastapi-offline`` package ships them (Swagger UI 5, which reads OpenAPI 3.1),
    so that ``/docs`` works offline."""
    name = str(request.path_params["name"])
    if name not in SWAGGER_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(Path(str(importlib.resources.files("fastapi_offline"))) / "static" / name, media_type=SWAGGER_FILES[name],
                        headers={"Cache-Control": "public, max-age=86400"})


def ui_routes() -> list[Route]:
    """Every route of the web view."""
    return [
        Route("/ui", home, methods=["GET"]),
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", signed_in(logout, post=True), methods=["POST"]),
        Route("/ui/static/swagger/{name}", swagger_file, methods=["GET"]),
        Route("/ui/static/{name}", static_file, methods=["GET"]),
        Route("/ui/jobs", signed_in(jobs_list), methods=["GET"]),
        Route("/ui/jobs/{job_id}", signed_in(job_detail), methods=["GET"]),
        Route("/ui/jobs/{job_id}/events", signed_in(job_events), methods=["GET"]),
        Route("/ui/jobs/{job_id}/cancel", signed_in(job_cancel, post=True), methods=["POST"]),
        Route("/ui/jobs/{job_id}/report", signed_in(job_report), methods=["GET"]),
        Route("/ui/jobs/{job_id}/result.json", signed_in(job_result), methods=["GET"]),
        Route("/ui/jobs/{job_id}/figures/{name}.png", signed_in(job_figure), methods=["GET"]),
        Route("/ui/compare", signed_in(compare_view), methods=["GET"]),
        Route("/ui/schedules", signed_in(schedules_list), methods=["GET"]),
        Route("/ui/schedules/{schedule_id}", signed_in(schedule_detail), methods=["GET"]),
        Route("/ui/schedules/{schedule_id}/pause", signed_in(_toggle(False), post=True), methods=["POST"]),
        Route("/ui/schedules/{schedule_id}/resume", signed_in(_toggle(True), post=True), methods=["POST"]),
    ]


def install_ui(app: Any) -> None:
    """Add the web view's routes to the app (plain routes: not in the OpenAPI schema)."""
    app.router.routes.extend(ui_routes())
