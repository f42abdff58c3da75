"""Schedules: cron + time zone + job template; next run times and past runs; pause, resume, update, delete; the
run history with each run compared with the previous successful one (the regression gate) and its trend figure.

A slot fires at most once even with several service processes on one database; after downtime only
the latest missed slot runs (once). A cron must fire within 8 years (30 February is refused, 29 February
is not). A stored row that cannot fire shows why in ``broken`` instead of failing the listing. See
:mod:`service.scheduler`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam

from mlac.errors import ConfigError
from service.deps import PrincipalDep, StateDep
from service.errors import ConflictError
from service.jobspec import worker_spec
from service.quotas import estimate, job_refusal, limits_for
from service.routes import jobs as job_routes
from service.schedule_runs import RunReading, run_history
from service.scheduler import check_schedule, job_from_template, next_slots, slot_key, template_problem
from service.schemas import (
    ErrorPublic,
    FindingPublic,
    JobCreate,
    JobPublic,
    RegressionOptions,
    ScheduleCreate,
    SchedulePublic,
    ScheduleReadingPublic,
    ScheduleRunPublic,
    ScheduleRunsPublic,
    SchedulesPublic,
    ScheduleUpdate,
)
from service.store.records import Schedule
from service.store.sql import new_id

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])
ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorPublic} for c in (400, 401, 404, 409, 422, 429)}
ScheduleIdPath = Annotated[str, PathParam(pattern=r"^sch_[0-9a-f]{20}$")]


def upcoming(state: Any, s: Schedule) -> tuple[list[str], str | None]:
    """The next five slots and why the schedule cannot fire: the scheduler's mark, or a problem found now."""
    if s.broken is not None:
        return [], s.broken
    try:
        slots = next_slots(s.cron, s.timezone, state.scheduler.clock(), 5)
    except ConfigError as exc:
        return [], str(exc)
    problem = template_problem(s.template)
    return ([] if s.paused or problem else slots), problem


def public(state: Any, s: Schedule) -> SchedulePublic:
    """API view of a schedule, with its next five slots, its last runs, and why it cannot fire (if so)."""
    runs = state.store.schedule_runs(s.id, 20)
    next_runs, broken = upcoming(state, s)
    return SchedulePublic(
        id=s.id, name=s.name, cron=s.cron, timezone=s.timezone, paused=s.paused,
        job=s.template if isinstance(s.template, dict) else {}, webhook_url=s.webhook_url,
        created_at=s.created_at, last_slot=s.last_slot, broken=broken, next_runs=next_runs,
        past_runs=[ScheduleRunPublic(slot=r.slot, job_id=r.job_id, fired_at=r.fired_at) for r in runs],
        regression=RegressionOptions(**(s.regression or {})),
    )


@router.post("", status_code=201, response_model=SchedulePublic, responses=ERRORS)
def create_schedule(body: ScheduleCreate, state: StateDep, principal: PrincipalDep) -> SchedulePublic:
    """Create a schedule; its job template is checked now (references must be yours, the config valid).
    Rate-limited before the body is read (:mod:`service.guards`)."""
    check_schedule(body.cron, body.timezone, state.scheduler.clock())
    for url in (body.webhook_url, body.job.webhook_url):
        if url is not None:
            state.webhooks.policy.check_url(str(url))  # 422 webhook_url_denied (checked again at send time)
    spec = worker_spec(body.job, state.store, principal.owner_filter)
    refusal = job_refusal(estimate(body.job.kind, spec), limits_for(state.store.get_api_key(principal.key_id), state.settings))
    if refusal is not None:  # every slot would make a job the key may not run
        raise refusal
    row = Schedule(id=new_id("sch"), owner=principal.key_id, name=body.name, cron=body.cron, timezone=body.timezone,
                   template=body.job.model_dump(mode="json"), webhook_url=str(body.webhook_url) if body.webhook_url else None,
                   paused=False, created_at=time.time(), last_slot=None, regression=body.regression.model_dump())
    return public(state, state.store.add_schedule(row))


@router.get("", response_model=SchedulesPublic, responses=ERRORS)
def list_schedules(state: StateDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> SchedulesPublic:
    """Your schedules."""
    items, total = state.store.list_schedules(principal.owner_filter, limit, offset)
    return SchedulesPublic(items=[public(state, s) for s in items], total=total, limit=limit, offset=offset)


@router.get("/{schedule_id}", response_model=SchedulePublic, responses=ERRORS)
def get_schedule(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> SchedulePublic:
    """One schedule with its next run times and past runs."""
    return public(state, state.store.get_schedule(schedule_id, principal.owner_filter))


@router.post("/{schedule_id}/pause", response_model=SchedulePublic, responses=ERRORS)
def pause_schedule(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> SchedulePublic:
    """Stop firing (slots passing while paused are not caught up)."""
    return public(state, state.store.set_schedule_paused(schedule_id, principal.owner_filter, True))


@router.post("/{schedule_id}/resume", response_model=SchedulePublic, responses=ERRORS)
def resume_schedule(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> SchedulePublic:
    """Fire again from the next slot (plus the latest missed one, as after downtime).

    A broken schedule is checked again: 422 with the reason while it still cannot fire, else the mark is cleared.
    """
    row = state.store.get_schedule(schedule_id, principal.owner_filter)
    if row.broken is not None:
        check_schedule(row.cron, row.timezone, state.scheduler.clock())
        problem = template_problem(row.template)
        if problem is not None:
            raise ConfigError(f"schedule {schedule_id} still cannot fire: {problem}")
        state.store.mark_schedule_broken(schedule_id, None)
    return public(state, state.store.set_schedule_paused(schedule_id, principal.owner_filter, False))


@router.patch("/{schedule_id}", response_model=SchedulePublic, responses=ERRORS)
def update_schedule(schedule_id: ScheduleIdPath, body: ScheduleUpdate, state: StateDep,
                    principal: PrincipalDep) -> SchedulePublic:
    """Replace the job template (checked as at creation: e.g. a new checkpoint to audit from the next run on) and/or
    the regression policy. Past runs keep the jobs they made."""
    state.store.get_schedule(schedule_id, principal.owner_filter)  # 404 for another key's
    template = None
    if body.job is not None:
        if body.job.webhook_url is not None:
            state.webhooks.policy.check_url(str(body.job.webhook_url))
        spec = worker_spec(body.job, state.store, principal.owner_filter)
        refusal = job_refusal(estimate(body.job.kind, spec),
                              limits_for(state.store.get_api_key(principal.key_id), state.settings))
        if refusal is not None:
            raise refusal
        template = body.job.model_dump(mode="json")
    regression = body.regression.model_dump() if body.regression is not None else None
    row = state.store.update_schedule(schedule_id, principal.owner_filter, template=template, regression=regression)
    if template is not None and row.broken is not None and template_problem(row.template) is None:
        state.store.mark_schedule_broken(schedule_id, None)
        row = state.store.get_schedule(schedule_id, principal.owner_filter)
    return public(state, row)


@router.post("/{schedule_id}/run", status_code=201, response_model=JobPublic, responses=ERRORS)
def run_schedule_now(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> JobPublic:
    """Fire the schedule now (a run like a slot's: in its history, compared with the previous successful run, counted
    against the key's active-job quota). 409 when a run was fired in this same second."""
    schedule = state.store.get_schedule(schedule_id, principal.owner_filter)
    problem = template_problem(schedule.template)
    if problem is not None:
        raise ConfigError(f"schedule {schedule_id} cannot run: {problem}")
    new_job = job_from_template(schedule)
    limits = limits_for(state.store.get_api_key(schedule.owner), state.settings)
    refusal = job_refusal(estimate(new_job.kind, worker_spec(JobCreate.model_validate(schedule.template), state.store,
                                                             schedule.owner)), limits)
    if refusal is not None:
        raise refusal
    now = state.scheduler.clock()
    job = state.store.fire_slot(schedule_id, slot_key(now), new_job, f"manual:{principal.key_id}", now.timestamp(),
                                max_active=limits.max_active_jobs)
    if job is None:
        raise ConflictError(f"schedule {schedule_id} was fired in this same second: try again")
    state.dispatcher.wake()
    return job_routes.view(state, job)


def reading_public(r: RunReading) -> ScheduleReadingPublic:
    """API view of one run's reading."""
    c = r.comparison
    return ScheduleReadingPublic(
        slot=r.slot, job_id=r.job_id, fired_at=r.fired_at, state=r.state, verdict=r.verdict, harmful=r.harmful,
        previous_job_id=r.previous_job_id, regressed=r.regressed, statements=list(c.statements) if c else [],
        findings=[FindingPublic(task=row.task, n=row.n, difference=row.difference, finding=row.finding,  # type: ignore[arg-type]
                                reads=row.reads()) for row in c.rows] if c else [],
        not_comparable=r.not_comparable)


@router.get("/{schedule_id}/runs", response_model=ScheduleRunsPublic, responses=ERRORS)
def schedule_runs(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> ScheduleRunsPublic:
    """Every run, oldest first: its state and verdict, the trend value (the audited model's harmful accuracy at
    the largest n) and how it compares with the previous successful run (``regressed``: significantly easier to
    attack on the harmful task at some n)."""
    schedule = state.store.get_schedule(schedule_id, principal.owner_filter)
    readings = run_history(state.store, schedule)
    items = [reading_public(r) for r in readings]
    return ScheduleRunsPublic(schedule_id=schedule_id, items=items, regressions=sum(r.regressed for r in readings),
                              trend_png=f"/v1/schedules/{schedule_id}/runs.png")


@router.get("/{schedule_id}/runs.png", response_class=Response, responses={**ERRORS, 200: {"content": {"image/png": {}}}})
def schedule_trend(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> Response:
    """The trend over time: each successful run's harmful accuracy at the largest n, regressed runs in red."""
    from mlac.audit.compare_report import trend_png

    schedule = state.store.get_schedule(schedule_id, principal.owner_filter)
    points = [(r.fired_at, r.harmful, r.regressed) for r in run_history(state.store, schedule)]
    return Response(trend_png(points, f"{schedule.name}: harmful accuracy over time"), media_type="image/png")


@router.delete("/{schedule_id}", status_code=204, responses=ERRORS)
def delete_schedule(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> Response:
    """Delete a schedule (the jobs it created stay)."""
    state.store.delete_schedule(schedule_id, principal.owner_filter)
    return Response(status_code=204)
