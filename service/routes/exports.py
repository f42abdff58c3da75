"""``GET /v1/jobs/{id}/export.csv``: a finished audit's curves, seed points or trials as CSV (owner-checked), and
the per-example predictions (``samples``, ``samples_summary``) of an audit run with ``log_samples``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from mlac.audit.export import to_csv
from mlac.audit.result_schema import AuditResult
from mlac.audit.samples import SAMPLES_FILE, SUMMARY_FILE
from service.deps import PrincipalDep, StateDep
from service.errors import NotFoundError, NotReadyError
from service.schemas import ErrorPublic

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (401, 403, 404, 409, 422, 429)}
#: Tables that are files the audit wrote (with ``log_samples``), not tables of its result.
SAMPLE_FILES = {"samples": SAMPLES_FILE, "samples_summary": SUMMARY_FILE}


@router.get("/{job_id}/export.csv", response_class=Response, responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
async def export_csv(job_id: Annotated[str, PathParam(pattern=r"^job_[0-9a-f]{20}$")], state: StateDep,
                     principal: PrincipalDep,
                     table: Annotated[Literal["curves", "seed_points", "trials", "samples", "samples_summary"], Query(
                         description="curves (per model, task, n), seed_points (per seed), trials (per trial); with "
                                     "log_samples: samples (per seed, rerun and report example), samples_summary "
                                     "(per model, task, n and report example)")] = "curves",
                     ) -> Response:
    """One table of a finished audit as CSV (``?table=curves|seed_points|trials|samples|samples_summary``)."""
    disposition = {"Content-Disposition": f'attachment; filename="{job_id}-{table}.csv"'}

    def result_dir() -> Path:
        job = state.store.get_job(job_id, principal.owner_filter)
        if job.state != "SUCCEEDED" or not job.result_path:
            raise NotReadyError(f"job {job_id} is {job.state}: results exist once it has SUCCEEDED")
        folder = Path(job.result_path)
        if not (folder / "result.json").is_file():
            raise NotFoundError(f"job {job_id} has no audit result (censor jobs have none)")
        return folder

    if table in SAMPLE_FILES:
        path = await run_in_threadpool(lambda: result_dir() / SAMPLE_FILES[table])
        if not path.is_file():
            raise NotFoundError(f"job {job_id} has no per-example predictions: submit the audit with "
                                "audit.log_samples = true")
        return FileResponse(path, media_type="text/csv; charset=utf-8", headers=disposition)
    text = await run_in_threadpool(lambda: to_csv(AuditResult.read(result_dir() / "result.json"), table))
    return Response(text, media_type="text/csv; charset=utf-8", headers=disposition)
