"""Plain records the job store returns (immutable snapshots of rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Job states and the transitions the state machine allows.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELLED}),
    RUNNING: frozenset({QUEUED, SUCCEEDED, FAILED, CANCELLED}),  # RUNNING -> QUEUED: lease expired (crash)
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class ApiKey:
    """An API key (only its sha256 is stored)."""

    id: str
    name: str
    key_hash: str
    is_admin: bool
    created_at: float
    revoked: bool = False
    #: Quota overrides set by the admin (None: the service default, ``MLAC_QUOTA_*``).
    max_trial_runs_per_job: int | None = None
    max_active_jobs: int | None = None
    max_stored_bytes: int | None = None


@dataclass(frozen=True)
class KeyQuota:
    """A key's quota overrides (None: the service default); columns of ``mlac_api_keys`` (migration 0005)."""

    max_trial_runs_per_job: int | None = None
    max_active_jobs: int | None = None
    max_stored_bytes: int | None = None


@dataclass(frozen=True)
class Usage:
    """What a key uses now: its queued + running jobs and the bytes of its checkpoint and dataset rows."""

    active_jobs: int
    stored_bytes: int


@dataclass(frozen=True)
class Checkpoint:
    """A key's checkpoint row. ``sha256`` is the checkpoint id: the sha256 of the manifest of all its files
    (:mod:`mlac.checkpoint_id`; rows stored before migration 0003 keep their weights' sha256). Rows of several
    keys share a ``path`` only when their files are byte-for-byte the same."""

    sha256: str
    owner: str
    name: str
    path: str
    size_bytes: int
    info: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class DatasetRec:
    """A dataset in the project's on-disk format (parquet + task sidecar)."""

    id: str
    owner: str
    name: str
    source: str
    path: str
    num_rows: int
    fingerprint: str
    info: dict[str, Any]
    created_at: float
    size_bytes: int = 0  #: bytes stored on disk (the byte quota counts them)


@dataclass(frozen=True)
class NewJob:
    """What creating a job needs (the store fills in id, state and times)."""

    owner: str
    kind: str
    spec: dict[str, Any]
    spec_hash: str
    idempotency_key: str | None = None
    checkpoint_sha: str | None = None
    dataset_id: str | None = None
    schedule_id: str | None = None
    webhook_url: str | None = None
    estimate: dict[str, Any] | None = None  #: :class:`mlac.audit.cost.JobCost` as a dict (migration 0005)


@dataclass(frozen=True)
class Job:
    """A job row."""

    id: str
    owner: str
    kind: str
    state: str
    spec: dict[str, Any]
    spec_hash: str
    idempotency_key: str | None
    checkpoint_sha: str | None
    dataset_id: str | None
    schedule_id: str | None
    webhook_url: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    lease_owner: str | None
    lease_expires_at: float | None
    attempts: int
    cancel_requested: bool
    progress: dict[str, Any]
    result_path: str | None
    error: str | None
    verdict: str | None
    estimate: dict[str, Any] | None = None  #: the cost estimate made at submission (None for older jobs)
    error_detail: str | None = None  #: the traceback of a failure (``error`` is its one-line cause)


@dataclass(frozen=True)
class Schedule:
    """A cron schedule with a job template."""

    id: str
    owner: str
    name: str
    cron: str
    timezone: str
    template: dict[str, Any]
    webhook_url: str | None
    paused: bool
    created_at: float
    last_slot: str | None
    broken: str | None = None  # why the scheduler cannot fire it (bad cron, zone or template); it is then skipped
    #: ``{"fail_on_regression": bool, "alpha": float}``: what a run significantly easier to attack than the previous
    #: successful run does (None: compared and reported, never failed)
    regression: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScheduleRun:
    """One fired slot of a schedule."""

    schedule_id: str
    slot: str
    job_id: str
    fired_at: float
    fired_by: str


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial of a job's search, written idempotently."""

    job_id: str
    study: str
    trial: int
    value: float | None
    payload: dict[str, Any] = field(default_factory=dict)
    recorded_at: float = 0.0


@dataclass(frozen=True)
class JobEvent:
    """One progress event of a job (served as Server-Sent Events)."""

    job_id: str
    seq: int
    t: float
    payload: dict[str, Any]


#: Webhook delivery states: waiting (or retrying), sent (2xx), given up, refused by the egress policy.
WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_REFUSED = "pending", "delivered", "failed", "refused"
WEBHOOK_STATES = (WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_REFUSED)


@dataclass(frozen=True)
class NewWebhook:
    """A webhook to enqueue in the outbox (one row per delivery; ``(job_id, event)`` is enqueued once)."""

    owner: str
    url: str
    destination: str  # host:port, the unit of per-destination isolation
    event: str
    body: str  # the exact JSON sent (and signed) on every attempt
    job_id: str | None = None


@dataclass(frozen=True)
class WebhookDelivery:
    """An outbox row: a delivery and what happened to it."""

    id: str
    owner: str
    job_id: str | None
    url: str
    destination: str
    event: str
    body: str
    state: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    claimed_by: str | None
    claim_expires_at: float | None
    created_at: float
    updated_at: float
    delivered_at: float | None


@dataclass(frozen=True)
class WebhookOutcome:
    """What one delivery attempt did: the row's next state and, for a retry, when."""

    state: str
    status: int | None = None
    error: str | None = None
    next_attempt_at: float | None = None


@dataclass(frozen=True)
class WebhookSecret:
    """A tenant's (API key's) HMAC signing secret."""

    owner: str
    secret: str
    created_at: float
