"""From an API job request to the :class:`mlac.jobs.JobSpec` the runners execute, computed once at submission.

:func:`job_spec` resolves the request's references from the store (the caller's datasets and checkpoints), takes
the defense's preset config with the request's overrides (:class:`mlac.defenses.DefenseSpec`) and the audit's
request (:func:`mlac.audit.overrides.build_audit_request`), and validates them with mlac (ConfigError -> 422).
The job row keeps the result next to the request (:func:`stored_spec`); the dispatcher runs that stored spec
(:func:`dispatch_spec`) and resolves again only for a job created without one (fired by a schedule, or stored
before specs were kept).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlac.audit.overrides import AuditOverrides, build_audit_request
from mlac.audit.protocol import TINY_BASE, AuditRequest
from mlac.data import split_sizes
from mlac.defenses import DefenseSpec
from mlac.errors import ConfigError
from mlac.jobs import JobSpec, audits, canonical_kind, defends
from service.errors import ConflictError
from service.schemas import JobCreate
from service.store import JobStore
from service.store.records import Job

#: Key of the resolved spec in a job row's ``spec`` column, beside the request's fields (never shown: it names
#: server paths; :func:`request_of` takes it out).
WORKER_KEY = "worker_spec"


def spec_hash(body: JobCreate) -> str:
    """Hash of the canonical request body (what an Idempotency-Key is bound to). A request without ``defense`` or
    with ``audit.log_samples`` off hashes as it did before the field existed, so retries of older submissions
    still match."""
    data = body.model_dump(mode="json")
    if data.get("defense") is None:
        data.pop("defense", None)
    if not data["audit"].get("log_samples"):
        data["audit"].pop("log_samples", None)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def defense_spec(body: JobCreate) -> DefenseSpec | None:
    """The job's defense: the preset's config of the named defense with the request's overrides, validated by
    mlac (``censor`` options: the ``mlac`` defense); None for an audit."""
    if not defends(body.kind):
        if body.defense is not None:
            raise ConfigError(f"an {body.kind} job runs no defense: use kind defend_then_audit to defend, then audit")
        return None
    censor = body.censor.model_dump(exclude_none=True)
    if body.defense is None:
        return DefenseSpec.build("mlac", body.preset, censor)
    if censor:
        raise ConfigError("give the defense's options in defense.config, not in censor (its older place, for mlac only)")
    return DefenseSpec.build(body.defense.name, body.preset, body.defense.config.model_dump(exclude_none=True))


def checkpoint_path(store: JobStore, checkpoint_id: str, owner: str | None) -> str:
    """The directory of the owner's checkpoint (404 for another key's); 409 for a row that may hold another key's files."""
    ckpt = store.get_checkpoint(checkpoint_id, owner)
    if ckpt.info.get("legacy_shared"):
        raise ConflictError(f"checkpoint {checkpoint_id} was stored when ids covered only the weights, in a directory another "
                            "key uploaded first: its config.json or tokenizer may not be the ones you sent. Upload it again "
                            "(it gets an id of its own) and use the new id", code="reupload_required")
    return ckpt.path


def check_request(body: JobCreate) -> None:
    """Rules across fields (ConfigError -> 422)."""
    if defends(body.kind) and body.checkpoint_id is None:
        raise ConfigError(f"a {body.kind} job needs checkpoint_id: the base model to defend (upload it first)")
    if canonical_kind(body.kind) == "audit" and body.checkpoint_id is None and not body.audit.baselines:
        raise ConfigError("an audit job needs checkpoint_id (the model under audit) or at least one baseline")


def audit_overrides(body: JobCreate) -> AuditOverrides:
    """The request's ``audit`` options as the one override set of CLI and API."""
    opts = body.audit
    return AuditOverrides(
        sizes=tuple(opts.sizes) if opts.sizes is not None else None,
        seeds=tuple(opts.seeds) if opts.seeds is not None else None,
        tasks=tuple(opts.tasks) if opts.tasks is not None else None,
        selection_max=opts.selection_max, report_max=opts.report_max, max_length=opts.max_length,
        split_seed=opts.split_seed, max_trials=opts.max_trials, patience=opts.patience, reruns=opts.reruns,
        verdict=opts.verdict.model_dump(exclude_none=True), log_samples=opts.log_samples,
    )


def audit_spec(body: JobCreate, store: JobStore, owner: str | None, dataset_path: str) -> AuditRequest:
    """The AuditRequest of an audit or defend_then_audit job (a defended model is added when it exists)."""
    opts = body.audit
    models: tuple[str, ...] = ()
    base: str | None
    if defends(body.kind):
        assert body.checkpoint_id is not None  # checked by check_request
        base = checkpoint_path(store, body.checkpoint_id, owner)
        baselines = opts.baselines if opts.baselines is not None else ["random", "base"]
    else:
        if body.checkpoint_id is not None:
            models = (checkpoint_path(store, body.checkpoint_id, owner),)
        if opts.base_checkpoint_id is not None:
            base = checkpoint_path(store, opts.base_checkpoint_id, owner)
        else:
            base = models[0] if models else TINY_BASE
        baselines = opts.baselines if opts.baselines is not None else ["random"]
    if opts.tiny_base:
        base = TINY_BASE
    return build_audit_request(body.preset, dataset=dataset_path, models=models, base=base, baselines=tuple(baselines),
                               overrides=audit_overrides(body))


def audit_request(body: JobCreate, store: JobStore, owner: str | None, dataset_path: str) -> dict[str, Any]:
    """:func:`audit_spec` in its plain form."""
    return audit_spec(body, store, owner, dataset_path).to_dict()


def job_spec(body: JobCreate, store: JobStore, owner: str | None) -> JobSpec:
    """The spec a runner executes; validates it with mlac (ConfigError/DataError/CheckpointError)."""
    check_request(body)
    dataset = store.get_dataset(body.dataset_id, owner)
    defense = defense_spec(body)
    base = None
    if defense is not None:
        assert body.checkpoint_id is not None  # checked by check_request
        base = checkpoint_path(store, body.checkpoint_id, owner)
    request = None
    if audits(body.kind):
        request = audit_spec(body, store, owner, dataset.path)
        counts = dataset.info.get("strata_counts")
        if isinstance(counts, list) and counts:  # rows stored before the counts were kept: the worker checks
            request.check_pool(split_sizes([int(c) for c in counts])["attack_pool"])
    return JobSpec(kind=canonical_kind(body.kind), dataset=dataset.path, base=base, split_seed=body.audit.split_seed,
                   defense=defense, request=request)


def worker_spec(body: JobCreate, store: JobStore, owner: str | None) -> dict[str, Any]:
    """:func:`job_spec` in its plain form (what a runner's ``submit`` takes)."""
    return job_spec(body, store, owner).to_dict()


def stored_spec(body: JobCreate, spec: JobSpec) -> dict[str, Any]:
    """What a job row's ``spec`` column keeps: the request's fields and, under :data:`WORKER_KEY`, its spec."""
    return {**body.model_dump(mode="json"), WORKER_KEY: spec.to_dict()}


def request_of(stored: dict[str, Any]) -> dict[str, Any]:
    """The request's fields of a stored spec (what the API shows as ``request``)."""
    return {k: v for k, v in stored.items() if k != WORKER_KEY}


def dispatch_spec(job: Job, store: JobStore) -> dict[str, Any]:
    """The plain spec to run ``job`` with: the one computed at submission, else (a scheduled job, an older row)
    resolved and validated now."""
    stored = job.spec.get(WORKER_KEY)
    if isinstance(stored, dict):
        return stored
    return worker_spec(JobCreate.model_validate(request_of(job.spec)), store, job.owner)
