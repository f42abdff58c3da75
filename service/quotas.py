"""Per-key quotas: what a job may cost, how many jobs a key may have in flight, how many bytes it may store.

Each limit is the key's own override (columns of ``mlac_api_keys``, set by the admin; NULL = default) or
the ``MLAC_QUOTA_*`` setting. A refusal is :class:`QuotaExceededError` (code ``quota_exceeded``) with the
status that says what to do: 403 for a job too big for the limit (change the job), 429 for too many active
jobs (retry once one ends), 413 for an upload that would go over the stored bytes (delete something first).
The store enforces the active-jobs limit inside the transaction that creates the job
(:meth:`JobStore.create_job`); the byte limit is checked on an upload's declared ``Content-Length`` before a
byte is read and on its actual size before anything is placed or inserted (:func:`check_stored_bytes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlac.audit.cost import JobCost, audit_cost, defense_cost, job_cost
from mlac.jobs import JobSpec
from service.errors import ServiceError
from service.settings import Settings

if TYPE_CHECKING:
    from service.store.base import JobStore
    from service.store.records import ApiKey


class QuotaExceededError(ServiceError):
    """A per-key limit refuses the request; ``status`` is 403, 413 or 429 (see the module docstring)."""

    code = "quota_exceeded"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """A key's effective limits and which of them are its own overrides (the rest are defaults)."""

    max_trial_runs_per_job: int
    max_active_jobs: int
    max_stored_bytes: int
    overridden: frozenset[str] = frozenset()


def limits_for(key: ApiKey, settings: Settings) -> Limits:
    """The key's override where it has one, else the service default."""
    defaults = {"max_trial_runs_per_job": settings.quota_max_trial_runs_per_job,
                "max_active_jobs": settings.quota_max_active_jobs, "max_stored_bytes": settings.quota_max_stored_bytes}
    own = {name: getattr(key, name) for name in defaults if getattr(key, name) is not None}
    values = {**defaults, **own}
    return Limits(max_trial_runs_per_job=values["max_trial_runs_per_job"], max_active_jobs=values["max_active_jobs"],
                  max_stored_bytes=values["max_stored_bytes"], overridden=frozenset(own))


def spec_cost(spec: JobSpec) -> JobCost:
    """The cost of a validated job spec (:func:`service.jobspec.job_spec`): its audit (the defended model joins
    the audit when there is one) and its defense, priced like a censoring run."""
    audit = None
    if spec.request is not None:
        audit = audit_cost(spec.request, extra_models=1 if spec.defense is not None else 0)
    return job_cost(audit, defense_cost(spec.defense) if spec.defense is not None else None)


def estimate(kind: str, spec: Mapping[str, Any]) -> JobCost:
    """:func:`spec_cost` of a spec in its plain form (:func:`service.jobspec.worker_spec`)."""
    return spec_cost(JobSpec.from_dict(spec, kind=kind))


def job_refusal(cost: JobCost, limits: Limits) -> QuotaExceededError | None:
    """403 when the job may run more trial runs than the key's per-job limit, else None."""
    if cost.trial_runs <= limits.max_trial_runs_per_job:
        return None
    audit = cost.audit
    shape = (f" ({audit.studies} studies = {audit.models} models x tasks x sizes x seeds, each up to "
             f"max_trials + reruns runs)" if audit is not None else "")
    return QuotaExceededError(
        f"this job may run up to {cost.trial_runs:,} trial runs (fine-tuning runs of the attacker){shape}; the limit "
        f"of this key is {limits.max_trial_runs_per_job:,} per job. Use fewer sizes, seeds, baselines or tasks, or "
        "lower audit.max_trials / audit.reruns (POST /v1/jobs/estimate prices a job without creating it), or ask "
        "the admin to raise max_trial_runs_per_job for this key (PATCH /v1/keys/{id})", status=403)


def active_jobs_refusal(active: int, limit: int) -> QuotaExceededError:
    """429: the key already has ``limit`` queued or running jobs."""
    return QuotaExceededError(
        f"this key has {active} active (queued or running) jobs; the limit is {limit}. Wait for one to finish or "
        "cancel one (POST /v1/jobs/{id}/cancel) and submit again, or ask the admin to raise max_active_jobs for "
        "this key (PATCH /v1/keys/{id})", status=429)


def bytes_refusal(stored: int, incoming: int, limits: Limits, what: str) -> QuotaExceededError | None:
    """413 when ``incoming`` more bytes would take the key's stored bytes over its limit, else None."""
    if stored + incoming <= limits.max_stored_bytes:
        return None
    return QuotaExceededError(
        f"{what} of {incoming:,} bytes would bring this key's stored checkpoints and datasets to "
        f"{stored + incoming:,} bytes; the limit is {limits.max_stored_bytes:,} (stored now: {stored:,}). Delete "
        "checkpoints or datasets you no longer need (DELETE /v1/checkpoints/{id}, DELETE /v1/datasets/{id}), or ask "
        "the admin to raise max_stored_bytes for this key (PATCH /v1/keys/{id})", status=413)


def check_stored_bytes(store: JobStore, settings: Settings, owner: str, incoming: int, what: str) -> None:
    """Raise the 413 of :func:`bytes_refusal` when ``incoming`` more bytes would take ``owner`` over its limit.

    Not atomic with the insert that follows: concurrent uploads of one key can each pass, so the limit can be
    exceeded by at most (uploads in flight - 1) x the upload cap; the next upload is refused."""
    refusal = bytes_refusal(store.usage(owner).stored_bytes, incoming,
                            limits_for(store.get_api_key(owner), settings), what)
    if refusal is not None:
        raise refusal


def declared_bytes(content_length: str | None) -> int:
    """An upload's declared ``Content-Length`` (0 when absent or not a number: the upload parser reports that)."""
    return int(content_length) if content_length is not None and content_length.isascii() and content_length.isdigit() else 0
