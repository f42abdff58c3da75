"""``GET /v1/jobs/{id}/export.csv``: a finished audit's curves, seed points or trials as CSV (owner-checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from mlac.audit.export import to_csv
from mlac.audit.result_schema import AuditResult
from service.deps import PrincipalDep, StateDep
from service.errors import NotFoundError, NotReadyError
from service.schemas import ErrorPublic

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (401, 403, 404, 409, 422, 429)}


@router.get("/{job_id}/export.csv", response_class=Response, responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
async def export_csv(job_id: Annotated[str, PathParam(pattern=r"^job_[0-9a-f]{20}$")], state: StateDep,
                     principal: PrincipalDep,
                     table: Annotated[Literal["curves", "seed_points", "trials"], Query(
                         description="curves (per model, task, n), seed_points (per seed) or trials (per trial)")] = "curves",
                     ) -> Response:
    """One table of a finished audit as CSV (``?table=curves|seed_points|trials``)."""

    def build() -> str:
        job = state.store.get_job(job_id, principal.owner_filter)
        if job.state != "SUCCEEDED" or not job.result_path:
            raise NotReadyError(f"job {job_id} is {job.state}: results exist once it has SUCCEEDED")
        path = Path(job.result_path) / "result.json"
        if not path.is_file():
            raise NotFoundError(f"job {job_id} has no audit result (censor jobs have none)")
        return to_csv(AuditResult.read(path), table)

    text = await run_in_threadpool(build)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{job_id}-{table}.csv"'})
