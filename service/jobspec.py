"""From an API job request to the plain spec the runners take (``workers.jobs`` format).

Worker spec keys: ``request`` (an :class:`~mlac.audit.protocol.AuditRequest` as a dict) for audits,
``base``/``dataset``/``censor_config`` for censoring. Paths are resolved from the store when the job is
dispatched, and the result is validated by mlac (ConfigError -> 422 at submission).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlac.audit.presets import build_request
from mlac.audit.protocol import TINY_BASE, AuditRequest
from mlac.censor.config import MLACConfig
from mlac.data import split_sizes
from mlac.errors import ConfigError
from service.errors import ConflictError
from service.schemas import JobCreate
from service.store import JobStore

#: MLAC training settings per preset (the audit presets live in mlac.audit.presets).
CENSOR_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"inner_steps": 1, "outer_steps": 12, "checkpoint_every": 4, "val_every": 6, "outer_batch_size": 8,
              "inner_batch_sizes": [8], "max_length": 48, "val_max_examples": 32, "val_batches": 1, "remap_steps": 10,
              "outer_lr": 1e-4, "seed": 0},
    "quick": {"inner_steps": 4, "outer_steps": 150, "checkpoint_every": 25, "val_every": 50, "outer_batch_size": 16,
              "inner_batch_sizes": [12, 24], "max_length": 64, "val_max_examples": 100, "val_batches": 2,
              "remap_steps": 20, "outer_lr": 5e-5, "seed": 0},
    "paper": {},
    "strong": {},
}


def spec_hash(body: JobCreate) -> str:
    """Hash of the canonical request body (what an Idempotency-Key is bound to)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def censor_config(body: JobCreate) -> dict[str, Any]:
    """The preset's MLAC config with the request's overrides, validated by mlac."""
    values = {**CENSOR_PRESETS[body.preset], **body.censor.model_dump(exclude_none=True)}
    MLACConfig.from_dict(values)  # raises ConfigError with a message that says what to fix
    return values


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
    if body.kind in ("censor", "censor_then_audit") and body.checkpoint_id is None:
        raise ConfigError(f"a {body.kind} job needs checkpoint_id: the base model to censor (upload it first)")
    if body.kind == "audit" and body.checkpoint_id is None and not body.audit.baselines:
        raise ConfigError("an audit job needs checkpoint_id (the model under audit) or at least one baseline")
    if body.kind in ("censor", "censor_then_audit"):
        censor_config(body)


def audit_request(body: JobCreate, store: JobStore, owner: str | None, dataset_path: str) -> dict[str, Any]:
    """The AuditRequest dict of an audit or censor_then_audit job."""
    opts = body.audit
    models: tuple[str, ...] = ()
    base: str | None
    if body.kind == "censor_then_audit":
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
    overrides: dict[str, Any] = {
        k: v for k, v in {"sizes": opts.sizes, "seeds": opts.seeds, "tasks": opts.tasks, "selection_max": opts.selection_max,
                          "report_max": opts.report_max, "max_length": opts.max_length}.items() if v is not None
    }
    request = build_request(body.preset, dataset=dataset_path, models=models, base=base, baselines=tuple(baselines),
                            split_seed=opts.split_seed, **overrides)
    search = {k: v for k, v in {"max_trials": opts.max_trials, "patience": opts.patience, "reruns": opts.reruns}.items()
              if v is not None}
    if search:
        request = request.replace(search={**request.to_dict()["search"], **search})
    policy = opts.verdict.model_dump(exclude_none=True)
    if policy:
        request = request.replace(verdict={**request.to_dict()["verdict"], **policy})
    return request.to_dict()


def worker_spec(body: JobCreate, store: JobStore, owner: str | None) -> dict[str, Any]:
    """The plain spec a runner executes; validates it with mlac (ConfigError/DataError/CheckpointError)."""
    check_request(body)
    dataset = store.get_dataset(body.dataset_id, owner)
    spec: dict[str, Any] = {"dataset": dataset.path}
    if body.kind in ("censor", "censor_then_audit"):
        assert body.checkpoint_id is not None
        spec["base"] = checkpoint_path(store, body.checkpoint_id, owner)
        spec["censor_config"] = censor_config(body)
    if body.kind in ("audit", "censor_then_audit"):
        spec["request"] = audit_request(body, store, owner, dataset.path)
        counts = dataset.info.get("strata_counts")
        if isinstance(counts, list) and counts:  # rows stored before the counts were kept: the worker checks
            pool = split_sizes([int(c) for c in counts])["attack_pool"]
            AuditRequest.from_dict(spec["request"]).check_pool(pool)
    return spec
