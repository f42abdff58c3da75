"""Comparisons: ``POST /v1/comparisons`` compares two finished audits of the caller (or two models of one audit).

The answer is the comparison as JSON (per task and n: B - A paired by seed, its interval, the Holm-adjusted
p-value and what it means; the statements; what differs), or with ``?format=html`` the self-contained page and
``?format=png`` the figure. Pairs that were not measured the same way are a 422 (``not_comparable``) that says
what differs. Nothing is stored: a comparison is recomputed from the two results on every call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from mlac.audit.compare import Comparison, compare
from mlac.audit.result_schema import AuditResult
from service.deps import PrincipalDep, StateDep
from service.errors import NotFoundError, NotReadyError
from service.schemas import ComparisonCreate, ComparisonPublic, ErrorPublic
from service.state import AppState

router = APIRouter(prefix="/v1/comparisons", tags=["comparisons"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (400, 401, 403, 404, 409, 422, 429)}
#: Content security policy of the HTML page: no script, no external asset (the figure is a data: URI).
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"


def audit_result(state: AppState, job_id: str, owner: str | None) -> AuditResult:
    """The audit result of the caller's finished job (404 for another key's, 409 while it has not succeeded)."""
    job = state.store.get_job(job_id, owner)  # another key's job is a 404, as everywhere
    if job.state != "SUCCEEDED" or not job.result_path:
        raise NotReadyError(f"job {job_id} is {job.state}: it can be compared once it has SUCCEEDED")
    path = Path(job.result_path) / "result.json"
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no audit result (a censor job has none): compare audit jobs")
    return AuditResult.read(path)


def comparison_of(state: AppState, job_a: str, job_b: str, owner: str | None, *, model_a: str | None = None,
                  model_b: str | None = None, alpha: float = 0.05) -> Comparison:
    """The comparison of two of the caller's finished audits (the web view's page uses it too)."""
    a = audit_result(state, job_a, owner)
    b = a if job_b == job_a else audit_result(state, job_b, owner)
    return compare(a, b, model_a=model_a, model_b=model_b, alpha=alpha)


@router.post("", response_model=ComparisonPublic, responses={**ERRORS, 200: {"content": {
    "application/json": {}, "text/html": {}, "image/png": {}}}})
async def create_comparison(body: ComparisonCreate, state: StateDep, principal: PrincipalDep,
                            format: Annotated[Literal["json", "html", "png"], Query(
                                description="json (default), the HTML page, or the figure")] = "json") -> Response:
    """Compare audit B with audit A: per task and n, B - A paired by seed with its interval and a Holm-adjusted
    test, the statements, the data-cost multipliers and what differs. 422 ``not_comparable`` when the two were not
    measured the same way (different data, splits or attacker)."""
    found = await run_in_threadpool(comparison_of, state, body.job_a, body.job_b, principal.owner_filter,
                                    model_a=body.model_a, model_b=body.model_b, alpha=body.alpha)
    if format == "json":
        plain = found.to_dict()
        plain["a"]["job_id"], plain["b"]["job_id"] = body.job_a, body.job_b
        answer = ComparisonPublic.model_validate(plain)
        return Response(json.dumps(state.redactor.json(answer.model_dump(mode="json"))), media_type="application/json")
    from mlac.audit.compare_report import comparison_html, comparison_png

    if format == "png":
        return Response(await run_in_threadpool(comparison_png, found), media_type="image/png")
    page = state.redactor.text(await run_in_threadpool(comparison_html, found))
    return Response(page.encode("utf-8"), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"})
