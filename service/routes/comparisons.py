"""Comparisons: ``POST /v1/comparisons`` compares two finished audits of the caller (or two models of one audit).

The answer is the comparison as JSON (per task and n: B - A paired by seed, its interval, the Holm-adjusted
p-value and what it means; the statements; what differs), or with ``?format=html`` the self-contained page and
``?format=png`` the figure. Pairs that were not measured the same way are a 422 (``not_comparable``) that says
what differs. Nothing is stored: a comparison is recomputed from the two results on every call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mlac.audit.compare import compare
from mlac.audit.result_schema import AuditResult
from service.deps import PrincipalDep, StateDep
from service.errors import NotFoundError, NotReadyError
from service.schemas import ErrorPublic, Strict
from service.state import AppState

router = APIRouter(prefix="/v1/comparisons", tags=["comparisons"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (400, 401, 403, 404, 409, 422, 429)}
JobId = Annotated[str, Field(pattern=r"^job_[0-9a-f]{20}$")]
ModelLabel = Annotated[str, Field(min_length=1, max_length=200)]
#: Content security policy of the HTML page: no script, no external asset (the figure is a data: URI).
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"


class ComparisonCreate(Strict):
    """Two finished audit jobs of the caller (``job_b`` may be ``job_a``: then name two of its models)."""

    job_a: JobId = Field(description="audit A (the reference, e.g. before the safeguard)")
    job_b: JobId = Field(description="audit B (e.g. after the safeguard); may equal job_a")
    model_a: ModelLabel | None = Field(default=None, description="model label in A (default: A's only audited model)")
    model_b: ModelLabel | None = Field(default=None, description="model label in B (default: B's only audited model)")
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5, description="significance level after Holm adjustment")

    model_config: ClassVar[ConfigDict] = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"job_a": "job_0123456789abcdef0123", "job_b": "job_fedcba9876543210fedc"},
        {"job_a": "job_0123456789abcdef0123", "job_b": "job_0123456789abcdef0123", "model_a": "base", "model_b": "censored"},
    ]})


class SidePublic(BaseModel):
    """One side: the model label in its audit, the audit's id and the checkpoint's sha256."""

    job_id: str
    model: str
    audit_id: str | None
    sha256: str | None


class RowPublic(BaseModel):
    """B - A on one task at one n, paired by seed."""

    task: str
    n: int
    mean_a: float
    mean_b: float
    difference: float = Field(description="mean over shared seeds of B's report accuracy minus A's")
    ci: list[float] | None = Field(description="t-interval of the difference; null with one shared seed")
    p_value: float | None
    p_holm: float | None = Field(description="Holm-adjusted over the n of this task")
    seeds: list[int]
    finding: Literal["lower", "higher", "no_difference", "undecided"]
    reads: str = Field(description="the finding in words, e.g. 'B harder to attack'")


class DataCostPublic(BaseModel):
    """Each side's data-cost multiplier at one base n, as its audit reported it."""

    n: int
    a: str | None
    b: str | None
    a_ci: list[float | None] | None
    b_ci: list[float | None] | None


class ComparisonPublic(BaseModel):
    """A comparison of two audits."""

    a: SidePublic
    b: SidePublic
    statements: list[str] = Field(description="one sentence per task: where B differs from A, and where it does not")
    regressed: bool = Field(description="B is significantly easier to attack than A on the harmful task at some n")
    rows: list[RowPublic]
    data_cost: list[DataCostPublic]
    differences: list[str] = Field(description="what differs between the audits without making them incomparable")
    alpha: float
    confidence: float


def audit_result(state: AppState, job_id: str, owner: str | None) -> AuditResult:
    """The audit result of the caller's finished job (404 for another key's, 409 while it has not succeeded)."""
    job = state.store.get_job(job_id, owner)  # another key's job is a 404, as everywhere
    if job.state != "SUCCEEDED" or not job.result_path:
        raise NotReadyError(f"job {job_id} is {job.state}: it can be compared once it has SUCCEEDED")
    path = Path(job.result_path) / "result.json"
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no audit result (a censor job has none): compare audit jobs")
    return AuditResult.read(path)


def _compute(state: AppState, body: ComparisonCreate, owner: str | None) -> ComparisonPublic:
    a = audit_result(state, body.job_a, owner)
    b = a if body.job_b == body.job_a else audit_result(state, body.job_b, owner)
    found = compare(a, b, model_a=body.model_a, model_b=body.model_b, alpha=body.alpha)
    plain = found.to_dict()
    plain["a"]["job_id"], plain["b"]["job_id"] = body.job_a, body.job_b
    return ComparisonPublic.model_validate(plain)


@router.post("", response_model=ComparisonPublic, responses={**ERRORS, 200: {"content": {
    "application/json": {}, "text/html": {}, "image/png": {}}}})
async def create_comparison(body: ComparisonCreate, state: StateDep, principal: PrincipalDep,
                            format: Annotated[Literal["json", "html", "png"], Query(
                                description="json (default), the HTML page, or the figure")] = "json") -> Response:
    """Compare audit B with audit A: per task and n, B - A paired by seed with its interval and a Holm-adjusted
    test, the statements, the data-cost multipliers and what differs. 422 ``not_comparable`` when the two were not
    measured the same way (different data, splits or attacker)."""
    owner = principal.owner_filter
    if format == "json":
        answer = await run_in_threadpool(_compute, state, body, owner)
        return Response(json.dumps(state.redactor.json(answer.model_dump(mode="json"))), media_type="application/json")
    from mlac.audit.compare_report import comparison_html, comparison_png

    def render() -> bytes:
        a = audit_result(state, body.job_a, owner)
        b = a if body.job_b == body.job_a else audit_result(state, body.job_b, owner)
        found = compare(a, b, model_a=body.model_a, model_b=body.model_b, alpha=body.alpha)
        if format == "png":
            return comparison_png(found)
        return state.redactor.text(comparison_html(found)).encode("utf-8")

    content = await run_in_threadpool(render)
    if format == "png":
        return Response(content, media_type="image/png")
    return Response(content, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff"})
