"""Cron schedules: at every slot, create one job from the schedule's template.

Semantics (documented for users in the API description):

* A slot is a time the cron expression matches in the schedule's time zone, stored as UTC ISO-8601.
* At most once per slot, across any number of service processes on one database: the job is created
  in the same transaction as the (schedule, slot) row, whose primary key refuses a second insert.
* Catch-up after downtime: each tick looks only at the **latest** slot at or before now; if it is newer
  than the last fired slot (and not older than the schedule), it fires once. Slots missed in between
  are skipped, so a service that was down for a week runs one audit when it comes back, not seven.
* A schedule must fire within :data:`HORIZON` (8 years) of its creation, else it is refused (422). Feb 29
  is the rarest date a 5-field cron can name (every 4 years; 8 across a non-leap century year such as
  2100) and every other date recurs yearly, so 8 years accepts every cron that fires at all and refuses
  exactly the ones that never do (30 February, 31 April).
* A stored row that cannot fire (written before these checks, or corrupted: a cron without slots, an
  unknown time zone, an invalid job template) is marked **broken** with the reason and skipped; one such
  row never stops the other schedules, and the API shows the reason instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter
from pydantic import ValidationError

from mlac.errors import ConfigError
from service.background import WakeableLoop
from service.jobspec import spec_hash
from service.quotas import QuotaExceededError
from service.schemas import JobCreate
from service.store import JobStore
from service.store.records import Job, NewJob, Schedule

log = logging.getLogger(__name__)
SLOT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: How far ahead a new schedule's first slot may be (see the module docstring for why 8 years).
HORIZON = timedelta(days=8 * 366)


def utcnow() -> datetime:
    """The real clock (tests pass a frozen one)."""
    return datetime.now(timezone.utc)


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # "localtime" is the host's zone, not an IANA name: a schedule would change meaning with the server
    return frozenset(available_timezones() - {"localtime"})


def check_cron(cron: str, tz: str) -> ZoneInfo:
    """Validate a 5-field cron expression and an IANA time zone (ConfigError says what is wrong)."""
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ConfigError(f"invalid cron expression {cron!r}: use 5 fields 'minute hour day month weekday', e.g. '0 3 * * *'")
    if tz not in _zone_names():  # ZoneInfo alone takes folders ("Etc": IsADirectoryError) and data files
        raise ConfigError(f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Paris'")
    try:
        return ZoneInfo(tz)
    except (OSError, ValueError):
        raise ConfigError(f"unreadable time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Paris'") from None


def check_schedule(cron: str, tz: str, now: datetime) -> None:
    """:func:`check_cron`, and the cron must fire within :data:`HORIZON` of ``now`` (what creating a schedule checks)."""
    zone = check_cron(cron, tz)
    start = now.astimezone(zone)
    try:
        first = croniter(cron, start, max_years_between_matches=9).get_next(datetime)
    except CroniterError:
        first = None
    if first is None or first - start > HORIZON:
        raise ConfigError(f"cron expression {cron!r} never fires in time zone {tz!r}: it has no slot in the next 8 years "
                          "(it names a date that does not exist, such as 30 February or 31 April)")


def _never_fires(cron: str, tz: str) -> ConfigError:
    return ConfigError(f"cron expression {cron!r} never fires in time zone {tz!r} (no matching date exists)")


def slot_key(moment: datetime) -> str:
    """The stored form of a slot: UTC, second precision."""
    return moment.astimezone(timezone.utc).strftime(SLOT_FORMAT)


def latest_slot(cron: str, tz: str, now: datetime) -> datetime:
    """The latest slot at or before ``now``."""
    zone = check_cron(cron, tz)
    try:
        return croniter(cron, now.astimezone(zone) + timedelta(microseconds=1)).get_prev(datetime)
    except CroniterError:
        raise _never_fires(cron, tz) from None


def next_slots(cron: str, tz: str, now: datetime, count: int = 5) -> list[str]:
    """The next ``count`` slots after ``now`` (UTC ISO strings)."""
    zone = check_cron(cron, tz)
    it = croniter(cron, now.astimezone(zone))
    try:
        return [slot_key(it.get_next(datetime)) for _ in range(count)]
    except CroniterError:
        raise _never_fires(cron, tz) from None


def job_from_template(schedule: Schedule) -> NewJob:
    """The job a slot creates: the template request, owned by the schedule's owner."""
    body = JobCreate.model_validate(schedule.template)
    return NewJob(owner=schedule.owner, kind=body.kind, spec=body.model_dump(mode="json"), spec_hash=spec_hash(body),
                  checkpoint_sha=body.checkpoint_id, dataset_id=body.dataset_id, schedule_id=schedule.id,
                  webhook_url=str(body.webhook_url) if body.webhook_url else None)


def template_reason(exc: ValidationError) -> str:
    """A one-line reason for a stored job template that is no longer a valid job request."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "template"
    return f"job template is not a valid job request ({exc.error_count()} error(s); {where}: {first['msg']})"


def template_problem(template: object) -> str | None:
    """Why a stored job template is not a valid job request, or None."""
    try:
        JobCreate.model_validate(template)
    except ValidationError as exc:
        return template_reason(exc)
    return None


class Scheduler:
    """Fires due slots; :meth:`tick` is the whole algorithm, :meth:`start` runs it periodically."""

    def __init__(self, store: JobStore, *, instance: str, clock: Callable[[], datetime] = utcnow, interval_s: float = 15.0,
                 on_fired: Callable[[Job], None] | None = None, max_active: Callable[[str], int] | None = None) -> None:
        self.store, self.instance, self.clock, self.interval_s, self.on_fired = store, instance, clock, interval_s, on_fired
        self.max_active = max_active  # owner -> their limit of queued + running jobs (None: no limit)
        self._loop = WakeableLoop("mlac-scheduler", self.tick, interval_s)

    def tick(self) -> list[Job]:
        """Fire every due slot once; returns the jobs this call created (another process may have fired the rest).

        Each schedule is handled on its own: a row that cannot fire is marked broken (and then skipped), any
        other error is logged and retried next tick, and neither stops the schedules after it.
        """
        now = self.clock()
        fired: list[Job] = []
        for schedule in self.store.active_schedules():
            try:
                job = self._fire_due(schedule, now)
            except Exception:  # a database hiccup on one schedule: the next tick retries it
                log.exception("could not fire schedule %s", schedule.id)
                continue
            if job is not None:
                fired.append(job)
                if self.on_fired is not None:
                    self.on_fired(job)
        return fired

    def _fire_due(self, schedule: Schedule, now: datetime) -> Job | None:
        """Fire the schedule's latest slot if it is due; mark the row broken when it cannot fire."""
        try:
            slot = latest_slot(schedule.cron, schedule.timezone, now)
            new_job = job_from_template(schedule)
        except (ConfigError, ValidationError) as exc:
            reason = template_reason(exc) if isinstance(exc, ValidationError) else str(exc)
            log.error("schedule %s is broken and will be skipped: %s", schedule.id, reason)
            self.store.mark_schedule_broken(schedule.id, reason)
            return None
        key = slot_key(slot)
        if slot.timestamp() < schedule.created_at or (schedule.last_slot is not None and key <= schedule.last_slot):
            return None
        limit = self.max_active(schedule.owner) if self.max_active is not None else None
        try:
            job = self.store.fire_slot(schedule.id, key, new_job, self.instance, now.timestamp(), max_active=limit)
        except QuotaExceededError as exc:  # the slot stays due: it fires on a later tick, once a job has ended
            log.warning("schedule %s waits for slot %s: %s", schedule.id, key, exc)
            return None
        if job is not None:
            log.info("schedule %s fired slot %s -> job %s", schedule.id, key, job.id)
        return job

    def start(self) -> None:
        """Tick every ``interval_s`` seconds in a daemon thread."""
        self._loop.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._loop.stop()
