"""Schedules: cron + time zone + job template; next run times and past runs; pause, resume, delete.

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
from service.jobspec import worker_spec
from service.quotas import estimate, job_refusal, limits_for
from service.scheduler import check_schedule, next_slots, template_problem
from service.schemas import ErrorPublic, ScheduleCreate, SchedulePublic, ScheduleRunPublic, SchedulesPublic
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
                   paused=False, created_at=time.time(), last_slot=None)
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


@router.delete("/{schedule_id}", status_code=204, responses=ERRORS)
def delete_schedule(schedule_id: ScheduleIdPath, state: StateDep, principal: PrincipalDep) -> Response:
    """Delete a schedule (the jobs it created stay)."""
    state.store.delete_schedule(schedule_id, principal.owner_filter)
    return Response(status_code=204)
