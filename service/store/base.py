"""The job store interface and its contract (modelled on Optuna's ``BaseStorage``).

Contract, for every implementation (one test suite, ``tests/service/test_store_contract.py``, checks it
against SQLite and PostgreSQL):

* **Thread safety**: every method may be called from any thread and any process sharing the database;
  each method is one transaction.
* **Ownership**: methods taking ``owner`` return only that owner's rows; ``owner=None`` means the admin
  (every row). A row of another owner is reported exactly like a missing one (:class:`NotFoundError`).
* **Immutability**: a job in a terminal state (SUCCEEDED, FAILED, CANCELLED) never changes again, except
  that its events and trial results stay readable. ``spec`` of a job never changes.
* **State machine**: QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED; QUEUED -> CANCELLED;
  RUNNING -> QUEUED only through :meth:`requeue_expired` (a lease that ran out: the process running it
  died). Every transition is a compare-and-set on the current state; a transition the machine does not
  allow raises :class:`InvalidTransitionError` and changes nothing.
* **Idempotency**: :meth:`create_job` with the same (owner, idempotency key) and the same spec hash
  returns the first job (``created=False``); with another spec hash raises
  :class:`IdempotencyConflictError`. Concurrent calls create exactly one job (a unique constraint).
  :meth:`record_trial` keyed by (job, study, trial) writes once; later writes of the same key are
  ignored and return False. :meth:`fire_slot` creates at most one job per (schedule, slot).
* **Errors**: driver errors are translated: :class:`StoreUnavailableError` (connection or lock
  problems); nothing from SQLAlchemy or the DB driver escapes.
"""

from __future__ import annotations

import abc
from typing import Any

from service.store.records import (
    ApiKey,
    Checkpoint,
    DatasetRec,
    Job,
    JobEvent,
    KeyQuota,
    NewJob,
    NewWebhook,
    Schedule,
    ScheduleRun,
    TrialRecord,
    Usage,
    WebhookDelivery,
    WebhookOutcome,
    WebhookSecret,
)


class JobStore(abc.ABC):
    """Persistent state of the service: keys, checkpoints, datasets, jobs, events, trial results, schedules."""

    url: str

    # -- lifecycle
    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""

    @property
    def fast_reads(self) -> bool:
        """Whether :meth:`get_job` is a quick local read that never waits on I/O (an event loop may call it)."""
        return False

    # -- API keys
    @abc.abstractmethod
    def add_api_key(self, name: str, key_hash: str, is_admin: bool, key_id: str | None = None,
                    quota: KeyQuota | None = None) -> ApiKey:
        """Store a key by its hash (idempotent on the hash: an existing key is returned), with its quota overrides."""

    @abc.abstractmethod
    def get_api_key(self, key_id: str) -> ApiKey:
        """One key by id, revoked or not (NotFoundError when unknown)."""

    @abc.abstractmethod
    def set_api_key_quota(self, key_id: str, quota: KeyQuota) -> ApiKey:
        """Replace the key's quota overrides (None fields: the default); NotFoundError when unknown."""

    @abc.abstractmethod
    def usage(self, owner: str) -> Usage:
        """The owner's queued + running jobs and the summed ``size_bytes`` of its checkpoint and dataset rows."""

    @abc.abstractmethod
    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The non-revoked key with this hash, or None."""

    @abc.abstractmethod
    def list_api_keys(self) -> list[ApiKey]:
        """Every key (admin only at the API)."""

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str) -> None:
        """Mark a key revoked (NotFoundError when unknown; ConflictError for the last active admin key, atomically,
        so that the service always keeps an admin)."""

    @abc.abstractmethod
    def reinstate_api_key(self, key_id: str) -> None:
        """Clear a key's revocation (start-up only: the configured admin key, when no active admin key is left)."""

    # -- checkpoints
    @abc.abstractmethod
    def add_checkpoint(self, ckpt: Checkpoint) -> tuple[Checkpoint, bool]:
        """Insert (owner, checkpoint id) once; returns (row, created)."""

    @abc.abstractmethod
    def get_checkpoint(self, sha256: str, owner: str | None) -> Checkpoint:
        """One checkpoint (NotFoundError when missing or another owner's)."""

    @abc.abstractmethod
    def list_checkpoints(self, owner: str | None, limit: int, offset: int) -> tuple[list[Checkpoint], int]:
        """A page of checkpoints, newest first, and the total count."""

    @abc.abstractmethod
    def delete_checkpoint(self, sha256: str, owner: str | None) -> int:
        """Delete the owner's row (admin: every row of that sha); ConflictError while a QUEUED/RUNNING job or a
        schedule uses it. Returns how many rows of this sha remain (0: the files may go)."""

    # -- datasets
    @abc.abstractmethod
    def add_dataset(self, ds: DatasetRec) -> DatasetRec:
        """Insert a dataset row."""

    @abc.abstractmethod
    def get_dataset(self, dataset_id: str, owner: str | None) -> DatasetRec:
        """One dataset (NotFoundError when missing or another owner's)."""

    @abc.abstractmethod
    def list_datasets(self, owner: str | None, limit: int, offset: int) -> tuple[list[DatasetRec], int]:
        """A page of datasets, newest first, and the total count."""

    @abc.abstractmethod
    def delete_dataset(self, dataset_id: str, owner: str | None) -> DatasetRec:
        """Delete and return the row; ConflictError while a QUEUED/RUNNING job or a schedule uses it."""

    # -- jobs
    @abc.abstractmethod
    def create_job(self, job: NewJob, max_active: int | None = None) -> tuple[Job, bool]:
        """Insert a QUEUED job, honouring the idempotency key (see the contract); returns (job, created).

        ``max_active``: refuse (:class:`~service.quotas.QuotaExceededError`, 429) when the owner already has that
        many QUEUED/RUNNING jobs, checked in the inserting transaction under a per-owner lock, so concurrent
        submissions never exceed it. A retry with a known idempotency key returns its job without the check."""

    @abc.abstractmethod
    def get_job(self, job_id: str, owner: str | None) -> Job:
        """One job (NotFoundError when missing or another owner's)."""

    @abc.abstractmethod
    def list_jobs(
        self, owner: str | None, *, state: str | None = None, kind: str | None = None, schedule_id: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Job], int]:
        """A filtered page of jobs, newest first, and the total count."""

    @abc.abstractmethod
    def queued_jobs(self, limit: int) -> list[Job]:
        """Oldest QUEUED jobs first."""

    @abc.abstractmethod
    def fair_queued_jobs(self, limit: int) -> list[Job]:
        """The next ``limit`` QUEUED jobs to start, round-robin across owners (the dispatcher's work list).

        Order: an owner's k-th queued job (k = 0, 1, ...) ranks at level running + k, where running counts the
        owner's RUNNING jobs; lower levels first; within a level, jobs not behind another of the same batch (k = 0)
        first, then the owner who started a job least recently (never first), then the oldest job."""

    @abc.abstractmethod
    def start_job(self, job_id: str, lease_owner: str, lease_until: float) -> Job:
        """QUEUED -> RUNNING with a lease held by ``lease_owner``; InvalidTransitionError otherwise."""

    @abc.abstractmethod
    def renew_leases(self, lease_owner: str, lease_until: float) -> int:
        """Extend every RUNNING lease held by ``lease_owner``; returns how many."""

    @abc.abstractmethod
    def requeue_expired(self, now: float) -> list[str]:
        """RUNNING jobs whose lease ran out go back to QUEUED (attempts + 1); returns their ids."""

    @abc.abstractmethod
    def finish_job(self, job_id: str, state: str, *, result_path: str | None = None, error: str | None = None,
                   verdict: str | None = None, error_detail: str | None = None) -> Job:
        """RUNNING (or QUEUED, for CANCELLED) -> a terminal state; InvalidTransitionError otherwise.

        ``error``: the one-line cause of a failure; ``error_detail``: its traceback (migration 0006)."""

    @abc.abstractmethod
    def request_cancel(self, job_id: str, owner: str | None) -> Job:
        """Flag a job for cancellation; a QUEUED job becomes CANCELLED at once. Terminal jobs: ConflictError."""

    @abc.abstractmethod
    def update_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Merge ``progress`` into a non-terminal job's live progress (ignored once terminal)."""

    @abc.abstractmethod
    def append_event(self, job_id: str, payload: dict[str, Any], t: float) -> int:
        """Append a progress event; returns its sequence number (1, 2, ...)."""

    @abc.abstractmethod
    def events_since(self, job_id: str, after_seq: int, limit: int = 500) -> list[JobEvent]:
        """Events with ``seq > after_seq``, in order."""

    @abc.abstractmethod
    def record_trial(self, result: TrialRecord) -> bool:
        """Write a trial result once per (job, study, trial); True when this call wrote it."""

    @abc.abstractmethod
    def trial_results(self, job_id: str) -> list[TrialRecord]:
        """Every trial result of a job, ordered by study then trial."""

    # -- schedules
    @abc.abstractmethod
    def add_schedule(self, schedule: Schedule) -> Schedule:
        """Insert a schedule."""

    @abc.abstractmethod
    def get_schedule(self, schedule_id: str, owner: str | None) -> Schedule:
        """One schedule (NotFoundError when missing or another owner's)."""

    @abc.abstractmethod
    def list_schedules(self, owner: str | None, limit: int = 50, offset: int = 0) -> tuple[list[Schedule], int]:
        """A page of schedules and the total count."""

    @abc.abstractmethod
    def active_schedules(self) -> list[Schedule]:
        """Every schedule that is neither paused nor broken (the scheduler's work list)."""

    @abc.abstractmethod
    def mark_schedule_broken(self, schedule_id: str, reason: str | None) -> None:
        """Record why a schedule cannot fire (it leaves :meth:`active_schedules`); None clears the mark."""

    @abc.abstractmethod
    def update_schedule(self, schedule_id: str, owner: str | None, *, template: dict[str, Any] | None = None,
                        regression: dict[str, Any] | None = None) -> Schedule:
        """Replace the job template and/or the regression policy (None leaves each as it is); NotFoundError."""

    @abc.abstractmethod
    def set_schedule_paused(self, schedule_id: str, owner: str | None, paused: bool) -> Schedule:
        """Pause or resume."""

    @abc.abstractmethod
    def delete_schedule(self, schedule_id: str, owner: str | None) -> None:
        """Delete a schedule and its run records (its jobs stay)."""

    @abc.abstractmethod
    def fire_slot(self, schedule_id: str, slot: str, job: NewJob, fired_by: str, now: float,
                  max_active: int | None = None) -> Job | None:
        """Atomically record the slot and create its job; None when the slot was already fired.
        ``max_active``: QuotaExceededError (nothing recorded) when the owner already has that many active jobs."""

    @abc.abstractmethod
    def schedule_runs(self, schedule_id: str, limit: int = 20) -> list[ScheduleRun]:
        """The latest fired slots, newest first."""

    # -- webhooks (migration 0004): per-tenant signing secrets and the persistent outbox
    @abc.abstractmethod
    def webhook_secret(self, owner: str, candidate: str) -> WebhookSecret:
        """The owner's signing secret; the first call stores ``candidate`` (concurrent first calls agree on one)."""

    @abc.abstractmethod
    def rotate_webhook_secret(self, owner: str, secret: str) -> WebhookSecret:
        """Replace (or set) the owner's signing secret; deliveries signed from now on use it."""

    @abc.abstractmethod
    def enqueue_webhook(self, webhook: NewWebhook, now: float) -> tuple[WebhookDelivery, bool]:
        """Insert a pending delivery due at ``now``; a second enqueue of the same (job, event) returns the first
        row (``created=False``)."""

    @abc.abstractmethod
    def claim_webhooks(self, claimer: str, now: float, claim_until: float, limit: int,
                       skip_destinations: frozenset[str] = frozenset()) -> list[WebhookDelivery]:
        """Claim up to ``limit`` due pending deliveries (compare-and-set: a row is claimed by one process only), at
        most one per destination, none for a destination in ``skip_destinations`` or with another live claim."""

    @abc.abstractmethod
    def record_webhook_attempt(self, delivery_id: str, claimer: str, outcome: WebhookOutcome, now: float) -> bool:
        """Count an attempt and store its outcome, releasing the claim; False (nothing written) when ``claimer`` no
        longer holds the claim."""

    @abc.abstractmethod
    def release_webhook_claims(self, claimer: str, delivery_ids: list[str] | None = None) -> int:
        """Drop ``claimer``'s claims (all, or those rows) without counting an attempt (clean shutdown)."""

    @abc.abstractmethod
    def list_webhooks(self, owner: str | None, *, job_id: str | None = None, state: str | None = None,
                      limit: int = 50, offset: int = 0) -> tuple[list[WebhookDelivery], int]:
        """A filtered page of the owner's deliveries (admin: all), newest first, and the total count."""
