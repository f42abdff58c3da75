"""Jobs: submit (with Idempotency-Key, priced and checked against the key's quotas), estimate, list, get with live
progress, cancel, result, report, figures, SSE events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mlac.audit.cost import JobCost
from mlac.jobs import JobSpec, audits
from service.auth import Principal
from service.checkpoint_store import dir_checkpoint
from service.deps import PrincipalDep, StateDep
from service.errors import NotFoundError, NotReadyError
from service.jobspec import job_spec, request_of, spec_hash, stored_spec
from service.quotas import Limits, active_jobs_refusal, job_refusal, limits_for, spec_cost
from service.routes.keys import quota_public
from service.schemas import (
    ErrorBody,
    ErrorPublic,
    EstimateAnswer,
    EstimatePublic,
    JobCreate,
    JobKind,
    JobPublic,
    JobsPublic,
    JobState,
    ProgressPublic,
    TrialPublic,
)
from service.state import AppState
from service.store.records import TERMINAL, Job, NewJob

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (400, 401, 403, 404, 409, 422, 429)}
JobIdPath = Annotated[str, PathParam(pattern=r"^job_[0-9a-f]{20}$")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                              pattern=r"^[\x21-\x7e]+$")]
SSE_POLL_S = 0.5


def public(job: Job) -> JobPublic:
    """API view of a job row."""
    base = f"/v1/jobs/{job.id}"
    progress = ProgressPublic(**{k: v for k, v in job.progress.items() if k in ProgressPublic.model_fields})
    return JobPublic(
        id=job.id, kind=job.kind, state=job.state, owner=job.owner, request=request_of(job.spec), progress=progress,  # type: ignore[arg-type]
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, attempts=job.attempts,
        cancel_requested=job.cancel_requested, error=job.error, error_detail=job.error_detail, verdict=job.verdict,
        schedule_id=job.schedule_id,
        links={"self": base, "events": f"{base}/events", "result": f"{base}/result", "report": f"{base}/report",
               "curves": f"{base}/figures/curves.png", "trials": f"{base}/trials"},
        estimate=EstimatePublic.from_cost(job.estimate) if job.estimate else None,
    )


def view(state: Any, job: Job) -> JobPublic:
    """:func:`public` with server paths taken out of the failure text (:mod:`service.redact`)."""
    out = public(job)
    texts = {k: getattr(out, k) for k in ("error", "error_detail") if isinstance(getattr(out, k, None), str)}
    if not texts:
        return out
    return out.model_copy(update={k: state.redactor.text(v) for k, v in texts.items()})


def priced(body: JobCreate, state: AppState, principal: Principal) -> tuple[JobSpec, JobCost, Limits]:
    """Resolve and validate the job's spec (404 / 422 now rather than a FAILED job later; the job runs this spec)
    and price it against the caller's limits."""
    spec = job_spec(body, state.store, principal.owner_filter)
    return spec, spec_cost(spec), limits_for(state.store.get_api_key(principal.key_id), state.settings)


@router.post("/estimate", response_model=EstimateAnswer, responses=ERRORS)
def estimate_job(body: JobCreate, state: StateDep, principal: PrincipalDep) -> EstimateAnswer:
    """Price a job without creating it: upper bounds of its trial runs and steps, and whether ``POST /v1/jobs``
    would accept it now (``refusal``: the ``quota_exceeded`` error it would get). Validates like a submission."""
    _, cost, limits = priced(body, state, principal)
    quota = quota_public(state, state.store.get_api_key(principal.key_id))
    refusal = job_refusal(cost, limits)
    if refusal is None and quota.usage.active_jobs >= limits.max_active_jobs:
        refusal = active_jobs_refusal(quota.usage.active_jobs, limits.max_active_jobs)
    return EstimateAnswer(estimate=EstimatePublic.from_cost(cost.to_dict()), accepted=refusal is None, quota=quota,
                          refusal=ErrorBody(code=refusal.code, message=str(refusal)) if refusal is not None else None)


@router.post("", status_code=201, response_model=JobPublic, responses=ERRORS)
def submit_job(body: JobCreate, response: Response, state: StateDep, principal: PrincipalDep,
               idempotency_key: IdempotencyKey = None) -> JobPublic:
    """Submit a job. The same ``Idempotency-Key`` with the same body returns the first job (200); with another
    body, 422 ``idempotency_conflict``. References to datasets and checkpoints must be your own (404). The rate limit
    is charged before the body is read (:mod:`service.guards`). Quotas (code ``quota_exceeded``): 403 when the job
    may run more trial runs than the key's per-job limit, 429 when the key already has its limit of queued + running
    jobs (a retry with a known Idempotency-Key still returns its job). The answer carries the cost ``estimate``."""
    if body.webhook_url is not None:
        state.webhooks.policy.check_url(str(body.webhook_url))  # 422 webhook_url_denied (checked again at send time)
    spec, cost, limits = priced(body, state, principal)
    refusal = job_refusal(cost, limits)
    if refusal is not None:
        raise refusal
    job, created = state.store.create_job(NewJob(
        owner=principal.key_id, kind=body.kind, spec=stored_spec(body, spec), spec_hash=spec_hash(body),
        idempotency_key=idempotency_key, checkpoint_sha=body.checkpoint_id, dataset_id=body.dataset_id,
        webhook_url=str(body.webhook_url) if body.webhook_url else None, estimate=cost.to_dict()),
        max_active=limits.max_active_jobs)
    if created:
        state.metrics.jobs_submitted.labels(kind=body.kind).inc()
        state.dispatcher.wake()
    else:
        response.status_code = 200
    return view(state, job)


@router.get("", response_model=JobsPublic, responses=ERRORS)
def list_jobs(state: StateDep, principal: PrincipalDep,
              job_state: Annotated[JobState | None, Query(alias="state")] = None,
              kind: Annotated[JobKind | None, Query()] = None,
              schedule_id: Annotated[str | None, Query(pattern=r"^sch_[0-9a-f]{20}$")] = None,
              limit: Annotated[int, Query(ge=1, le=200)] = 50,
              offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> JobsPublic:
    """Your jobs, newest first, filtered by state, kind or schedule."""
    items, total = state.store.list_jobs(principal.owner_filter, state=job_state, kind=kind, schedule_id=schedule_id,
                                         limit=limit, offset=offset)
    return JobsPublic(items=[view(state, j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS)
async def get_job(job_id: JobIdPath, state: StateDep, principal: PrincipalDep) -> Response:
    """One job with its live progress (stage, trials done/total, best so far, ETA)."""
    # The busiest route (clients poll it): on SQLite the read is a ~15 us local query that never waits for a
    # writer (WAL), so it runs on the event loop; other stores go through the thread pool. The model is
    # serialized once here (FastAPI would validate it again against response_model first).
    store = state.store
    if store.fast_reads:
        job = store.get_job(job_id, principal.owner_filter)
    else:
        job = await run_in_threadpool(store.get_job, job_id, principal.owner_filter)
    return Response(view(state, job).model_dump_json(), media_type="application/json")


@router.post("/{job_id}/cancel", status_code=202, response_model=JobPublic, responses=ERRORS)
def cancel_job(job_id: JobIdPath, state: StateDep, principal: PrincipalDep) -> JobPublic:
    """Cancel: a queued job ends at once; a running one stops within seconds (409 once it has ended)."""
    job = state.store.request_cancel(job_id, principal.owner_filter)
    state.dispatcher.wake()
    return view(state, job)


def _result_dir(state: Any, job_id: str, owner: str | None) -> tuple[Job, Path]:
    job = state.store.get_job(job_id, owner)
    if job.state != "SUCCEEDED" or not job.result_path:
        raise NotReadyError(f"job {job_id} is {job.state}: results exist once it has SUCCEEDED")
    return job, Path(job.result_path)


@router.get("/{job_id}/result", responses={**ERRORS, 200: {"content": {"application/json": {}}}})
def job_result(job_id: JobIdPath, state: StateDep, principal: PrincipalDep) -> Response:
    """The result JSON: the audit's ``result.json``, or for a defend (censor) job the new checkpoint and its
    provenance."""
    job, folder = _result_dir(state, job_id, principal.owner_filter)
    if not audits(job.kind):
        prov = folder / "provenance.json"
        body = {"kind": job.kind, "checkpoint_id": dir_checkpoint(folder)[0],
                "provenance": json.loads(prov.read_text(encoding="utf-8")) if prov.is_file() else {}}
        return Response(json.dumps(state.redactor.json(body)), media_type="application/json")
    path = folder / "result.json"
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no result.json")
    return Response(json.dumps(state.redactor.json(json.loads(path.read_bytes()))), media_type="application/json")


@router.get("/{job_id}/report", response_class=HTMLResponse, responses=ERRORS)
def job_report(job_id: JobIdPath, state: StateDep, principal: PrincipalDep) -> HTMLResponse:
    """The self-contained HTML audit card."""
    _, folder = _result_dir(state, job_id, principal.owner_filter)
    path = folder / "report.html"
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no report (defend and censor jobs have none)")
    return HTMLResponse(state.redactor.text(path.read_text(encoding="utf-8")))


@router.get("/{job_id}/figures/{name}.png", response_class=FileResponse, responses={**ERRORS, 200: {"content": {"image/png": {}}}})
def job_figure(job_id: JobIdPath, name: Annotated[str, PathParam(pattern=r"^[a-z_]{1,40}$")], state: StateDep,
               principal: PrincipalDep) -> FileResponse:
    """A figure of the audit: ``curves`` or ``attack_budget``."""
    _, folder = _result_dir(state, job_id, principal.owner_filter)
    path = folder / f"{name}.png"
    if not path.is_file():
        raise NotFoundError(f"job {job_id} has no figure {name!r}")
    return FileResponse(path, media_type="image/png")


@router.get("/{job_id}/trials", response_model=list[TrialPublic], responses=ERRORS)
def job_trials(job_id: JobIdPath, state: StateDep, principal: PrincipalDep) -> list[TrialPublic]:
    """Finished trials of the job's searches (each recorded once, keyed by study and trial number)."""
    state.store.get_job(job_id, principal.owner_filter)
    return [TrialPublic(study=t.study, trial=t.trial, value=t.value, recorded_at=t.recorded_at)
            for t in state.store.trial_results(job_id)]


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}})
async def job_events(job_id: JobIdPath, state: StateDep, principal: PrincipalDep,
                     last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20,
                                                                 pattern=r"^[0-9]+$")] = None) -> StreamingResponse:
    """Server-Sent Events: ``progress`` events (``id`` = sequence number, resume with ``Last-Event-ID``), then one
    ``end`` event with the final state."""
    store, redactor = state.store, state.redactor
    await run_in_threadpool(store.get_job, job_id, principal.owner_filter)
    start = int(last_event_id) if last_event_id else 0

    async def stream() -> Any:
        seq, idle = start, 0
        while True:
            events = await run_in_threadpool(store.events_since, job_id, seq)
            for e in events:
                seq = e.seq
                yield f"id: {e.seq}\nevent: progress\ndata: {json.dumps(redactor.json(e.payload), default=str)}\n\n"
            if events:
                idle = 0
                continue
            job = await run_in_threadpool(store.get_job, job_id, None)
            if job.state in TERMINAL:
                yield f"event: end\ndata: {json.dumps({'state': job.state, 'verdict': job.verdict})}\n\n"
                return
            idle += 1
            if idle % 30 == 0:
                yield ": keep-alive\n\n"
            await asyncio.sleep(SSE_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
