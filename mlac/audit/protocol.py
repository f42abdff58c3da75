"""The audit request and its expansion into searches (PROTOCOL.md, "The audit").

An :class:`AuditRequest` is plain frozen data (every layer converts its own input into one): the
models under audit (checkpoint directories), the baselines to build from a base model, the dataset,
tasks, data sizes, seeds, the attacker's search space and the search budget. :func:`expand` turns it
into one :class:`~mlac.contracts.StudyKey` per (model, task, n, seed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlac.attacks import TASKS
from mlac.audit.space import SearchConfig, SearchSpace
from mlac.audit.verdict import VerdictPolicy
from mlac.contracts import StudyKey
from mlac.errors import ConfigError, DataError
from mlac.models import validate_checkpoint_dir

BASELINES = ("random", "base", "beneficial_tuned", "ac")
#: ``base`` value that builds a small base model (tiny BERT trained on both labels) from the dataset.
TINY_BASE = "tiny"


@dataclass(frozen=True)
class BaselineConfig:
    """How baselines are built: the tiny base model, the beneficial fine-tune and the AC (K=0) run."""

    tiny_base_steps: int = 300
    tiny_base_batch_size: int = 32
    tiny_base_harmful_weight: float = 1.0
    beneficial_steps: int = 200
    beneficial_lr: float = 1e-4
    ac_steps: int = 200
    ac_lr: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.tiny_base_steps, self.tiny_base_batch_size, self.beneficial_steps, self.ac_steps) < 1:
            raise ConfigError("baseline training steps and batch sizes must be at least 1")
        if self.beneficial_lr <= 0 or self.ac_lr <= 0 or self.tiny_base_harmful_weight < 0:
            raise ConfigError("baseline learning rates must be positive and the harmful weight non-negative")


@dataclass(frozen=True)
class AuditRequest:
    """What to audit and how. See the module docstring; :meth:`validate` checks paths and ranges."""

    dataset: str
    models: tuple[str, ...] = ()
    base: str | None = None
    baselines: tuple[str, ...] = ()
    tasks: tuple[str, ...] = TASKS
    sizes: tuple[int, ...] = (20, 50, 100, 200)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    space: SearchSpace = field(default_factory=SearchSpace)
    search: SearchConfig = field(default_factory=SearchConfig)
    baseline_config: BaselineConfig = field(default_factory=BaselineConfig)
    split_seed: int = 0
    selection_max: int | None = 500
    report_max: int | None = 1000
    max_length: int = 128
    device: str = "auto"
    preset: str | None = None
    verdict: VerdictPolicy = field(default_factory=VerdictPolicy)
    #: Also write the reruns' per-example report predictions (``samples.csv``); an output option: it changes
    #: no number, no study and not :func:`audit_id`.
    log_samples: bool = False

    def __post_init__(self) -> None:
        for name in ("models", "baselines", "tasks", "sizes", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.verdict, dict):
            object.__setattr__(self, "verdict", VerdictPolicy.from_dict(self.verdict))
        for name, cls in (("space", SearchSpace), ("search", SearchConfig), ("baseline_config", BaselineConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls(**value))

    def validate(self) -> None:
        """Raise ConfigError / DataError / CheckpointError for anything a user can get wrong."""
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ConfigError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)}")
        bad_tasks = sorted(set(self.tasks) - set(TASKS))
        if bad_tasks or not self.tasks:
            raise ConfigError(f"tasks must be a non-empty subset of {TASKS}, got {list(self.tasks)}")
        if not self.models and not self.baselines:
            raise ConfigError("nothing to audit: give at least one --model checkpoint or one baseline")
        if self.baselines and self.base is None:
            raise ConfigError(f"baselines {list(self.baselines)} are built from a base model: pass --base PATH (or 'tiny')")
        if not self.sizes or any(n < 1 for n in self.sizes):
            raise ConfigError(f"sizes must be positive integers, got {list(self.sizes)}")
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct non-negative integers, got {list(self.seeds)}")
        for cap in (self.selection_max, self.report_max):
            if cap is not None and cap < 2:
                raise ConfigError("selection_max and report_max must be at least 2 (or None for the whole split)")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {self.max_length}")
        if not Path(self.dataset).is_file():
            raise DataError(f"dataset file not found: {self.dataset} (write one with `mlac-audit data synth`)")
        for path in self.models:
            validate_checkpoint_dir(path, check_values=False)
        if self.base is not None and self.base != TINY_BASE:
            validate_checkpoint_dir(self.base, check_values=False)

    def check_pool(self, pool_size: int) -> None:
        """DataError when a data size exceeds the attack pool."""
        too_big = [n for n in self.sizes if n > pool_size]
        if too_big:
            raise DataError(
                f"data size(s) {too_big} exceed the attack pool ({pool_size} examples): "
                "use smaller sizes or a larger dataset"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (tuples become lists); ``log_samples`` only when set (so the result JSON of an
        audit without it is what it was before the option existed)."""
        out: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        if not self.log_samples:
            out.pop("log_samples")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRequest:
        """Inverse of :meth:`to_dict`; unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"unknown audit request keys {extra}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> AuditRequest:
        """A copy with ``changes``."""
        return replace(self, **changes)


def model_labels(request: AuditRequest) -> list[tuple[str, str | None]]:
    """(label, checkpoint path or None for a baseline still to build), models first, unique labels."""
    out: list[tuple[str, str | None]] = []
    used: set[str] = set(request.baselines)
    for path in request.models:
        label = Path(path).resolve().name or "model"
        candidate, i = label, 2
        while candidate in used:
            candidate, i = f"{label}-{i}", i + 1
        used.add(candidate)
        out.append((candidate, path))
    out.extend((b, None) for b in BASELINES if b in request.baselines)
    return out


def expand(request: AuditRequest, checkpoints: dict[str, str]) -> list[StudyKey]:
    """One study per (model, task, n, seed), in a fixed order; ``checkpoints`` maps label -> path."""
    keys = []
    for label, _ in model_labels(request):
        if label not in checkpoints:
            raise ConfigError(f"no checkpoint known for {label!r}")
        for task in request.tasks:
            for n in request.sizes:
                for seed in request.seeds:
                    keys.append(StudyKey(label, checkpoints[label], task, n, seed))
    return keys


def plan_counts(request: AuditRequest) -> dict[str, int]:
    """How much work a request is, before it runs (trials are an upper bound: patience may stop early)."""
    studies = len(model_labels(request)) * len(request.tasks) * len(request.sizes) * len(request.seeds)
    return {
        "models": len(model_labels(request)),
        "studies": studies,
        "max_trials": studies * request.search.max_trials,
        "reruns": studies * request.search.reruns,
        "max_trial_runs": studies * (request.search.max_trials + request.search.reruns),
    }


def audit_id(request: AuditRequest, model_shas: dict[str, str], dataset_fingerprint: str) -> str:
    """Content id of an audit: same request, checkpoints and data -> same id -> same Optuna studies."""
    body = request.to_dict()
    body.pop("device", None)
    body.pop("log_samples", None)  # an output option: the same audit, with or without per-example predictions
    payload = json.dumps({"request": body, "models": model_shas, "data": dataset_fingerprint}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
