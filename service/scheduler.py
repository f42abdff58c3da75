"""Cron schedules: at every slot, create one job from the schedule's template.

Semantics (documented for users in the API description):

* A slot is a time the cron expression matches in the schedule's time zone, stored as UTC ISO-8601.
* At most once per slot, across any number of service processes on one database: the job is created
  in the same transaction as the (schedule, slot) row, whose primary key refuses a second insert.
* Catch-up after downtime: each tick looks only at the **latest** slot at or before now; if it is newer
  than the last fired slot (and not older than the schedule), it fires once. Slots missed in between
  are skipped, so a service that was down for a week runs one audit when it comes back, not seven.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from mlac.errors import ConfigError, MlacError
from service.jobspec import spec_hash
from service.schemas import JobCreate
from service.store import JobStore
from service.store.records import Job, NewJob, Schedule

log = logging.getLogger(__name__)
SLOT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utcnow() -> datetime:
    """The real clock (tests pass a frozen one)."""
    return datetime.now(timezone.utc)


def check_cron(cron: str, tz: str) -> ZoneInfo:
    """Validate a 5-field cron expression and an IANA time zone (ConfigError says what is wrong)."""
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ConfigError(f"invalid cron expression {cron!r}: use 5 fields 'minute hour day month weekday', e.g. '0 3 * * *'")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {tz!r}: use an IANA name such as 'UTC' or 'Europe/Paris'") from None


def slot_key(moment: datetime) -> str:
    """The stored form of a slot: UTC, second precision."""
    return moment.astimezone(timezone.utc).strftime(SLOT_FORMAT)


def latest_slot(cron: str, tz: str, now: datetime) -> datetime:
    """The latest slot at or before ``now``."""
    zone = check_cron(cron, tz)
    return croniter(cron, now.astimezone(zone) + timedelta(microseconds=1)).get_prev(datetime)


def next_slots(cron: str, tz: str, now: datetime, count: int = 5) -> list[str]:
    """The next ``count`` slots after ``now`` (UTC ISO strings)."""
    zone = check_cron(cron, tz)
    it = croniter(cron, now.astimezone(zone))
    return [slot_key(it.get_next(datetime)) for _ in range(count)]


def job_from_template(schedule: Schedule) -> NewJob:
    """The job a slot creates: the template request, owned by the schedule's owner."""
    body = JobCreate.model_validate(schedule.template)
    return NewJob(owner=schedule.owner, kind=body.kind, spec=body.model_dump(mode="json"), spec_hash=spec_hash(body),
                  checkpoint_sha=body.checkpoint_id, dataset_id=body.dataset_id, schedule_id=schedule.id,
                  webhook_url=str(body.webhook_url) if body.webhook_url else None)


class Scheduler:
    """Fires due slots; :meth:`tick` is the whole algorithm, :meth:`start` runs it periodically."""

    def __init__(self, store: JobStore, *, instance: str, clock: Callable[[], datetime] = utcnow, interval_s: float = 15.0,
                 on_fired: Callable[[Job], None] | None = None) -> None:
        self.store, self.instance, self.clock, self.interval_s, self.on_fired = store, instance, clock, interval_s, on_fired
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> list[Job]:
        """Fire every due slot once; returns the jobs this call created (another process may have fired the rest)."""
        now = self.clock()
        fired: list[Job] = []
        for schedule in self.store.active_schedules():
            try:
                slot = latest_slot(schedule.cron, schedule.timezone, now)
            except ConfigError:
                log.exception("schedule %s has an invalid cron", schedule.id)
                continue
            key = slot_key(slot)
            if slot.timestamp() < schedule.created_at or (schedule.last_slot is not None and key <= schedule.last_slot):
                continue
            try:
                job = self.store.fire_slot(schedule.id, key, job_from_template(schedule), self.instance, now.timestamp())
            except MlacError:
                log.exception("could not fire slot %s of schedule %s", key, schedule.id)
                continue
            if job is not None:
                log.info("schedule %s fired slot %s -> job %s", schedule.id, key, job.id)
                fired.append(job)
                if self.on_fired is not None:
                    self.on_fired(job)
        return fired

    def start(self) -> None:
        """Tick every ``interval_s`` seconds in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="mlac-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep scheduling through a transient database error
                log.exception("scheduler tick failed")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
