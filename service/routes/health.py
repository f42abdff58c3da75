"""``GET /v1/health`` (no auth) and ``GET /metrics`` (Prometheus, admin key only: the job counts and request
rates span every tenant)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from mlac import __version__
from service.deps import AdminDep, StateDep
from service.schemas import Health
from service.store.records import STATES

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=Health)
async def health(state: StateDep) -> Health:
    """Liveness: no API key needed."""
    backend = getattr(state.store, "backend", "sql")
    return Health(status="ok", version=__version__, store=str(backend), runner=state.runner.name)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(state: StateDep, admin: AdminDep) -> Response:
    """Prometheus exposition (scrape with the admin API key as a bearer token; other keys get 403: the numbers
    cover every tenant's jobs and traffic)."""

    def counts() -> dict[str, int]:
        return {s: state.store.list_jobs(None, state=s, limit=1)[1] for s in STATES}

    body = state.metrics.render(await run_in_threadpool(counts))
    return Response(body, media_type="text/plain; version=0.0.4")
