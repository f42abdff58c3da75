"""Jobs without a framework: a typed :class:`JobSpec` and the one :func:`run_job` every runner calls.

Kinds (:data:`JOB_KINDS`): ``audit`` (an :class:`~mlac.audit.protocol.AuditRequest`), ``defend`` (a registered
:mod:`defense <mlac.defenses>` on a base checkpoint) and ``defend_then_audit`` (defend, then audit the defended
model with the request's models and baselines). ``censor`` and ``censor_then_audit`` are their older names
(:data:`KIND_ALIASES`): an MLAC defense. The service's in-process runner and the Ray job driver are shells
over :func:`run_job`; the driver injects how the defense runs (its restartable censor actor: ``defend``) and how
trials run (its Ray executor: ``executor``).

Output folder: ``censored/`` (the defended checkpoint and its resume state) and ``audit/``
(report, result, Optuna journal). Running the same spec into the same folder resumes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from mlac.audit.protocol import AuditRequest
from mlac.audit.scheduling import TrialExecutor
from mlac.contracts import JobOutcome
from mlac.defenses import DefenseCall, DefenseSpec, run_defense
from mlac.errors import ConfigError, MlacError, StoppedError
from mlac.job_failure import JobFailure, failure_of

JobKind = Literal["audit", "defend", "defend_then_audit"]
#: Every kind a job may be submitted as (aliases included).
JOB_KINDS: tuple[str, ...] = ("audit", "defend", "defend_then_audit", "censor", "censor_then_audit")
#: Older names: a ``censor`` job is a ``defend`` job with the ``mlac`` defense.
KIND_ALIASES: dict[str, JobKind] = {"censor": "defend", "censor_then_audit": "defend_then_audit"}
#: The plain keys each kind needs (see :meth:`JobSpec.from_dict`).
NEEDED: dict[str, tuple[str, ...]] = {
    "audit": ("request",), "defend": ("base", "dataset"), "defend_then_audit": ("base", "dataset", "request"),
}
DEFENDED_DIR, AUDIT_DIR = "censored", "audit"

Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]
#: Runs one defense and returns the defended checkpoint's directory (default: :func:`run_defense` here).
Defend = Callable[[DefenseCall], str]
DescribeFailure = Callable[[BaseException], JobFailure]


def canonical_kind(kind: str) -> JobKind:
    """``kind`` with aliases resolved (ConfigError for an unknown one)."""
    if kind in KIND_ALIASES:
        return KIND_ALIASES[kind]
    if kind in ("audit", "defend", "defend_then_audit"):
        return kind  # type: ignore[return-value]
    raise ConfigError(f"unknown job kind {kind!r}; choose from {', '.join(JOB_KINDS)}")


def defends(kind: str) -> bool:
    """Whether a job of ``kind`` runs a defense."""
    return canonical_kind(kind) != "audit"


def audits(kind: str) -> bool:
    """Whether a job of ``kind`` runs an audit (and so has Optuna studies and a verdict)."""
    return canonical_kind(kind) != "defend"


def check_plain(kind: str, data: Mapping[str, Any]) -> None:
    """ConfigError unless ``data`` has the keys ``kind`` needs (a shape check; :meth:`JobSpec.from_dict` validates)."""
    needed = NEEDED[canonical_kind(kind)]
    missing = [k for k in needed if k not in data]
    if missing:
        raise ConfigError(f"a {kind} job spec needs {', '.join(needed)}; missing {', '.join(missing)}")


@dataclass(frozen=True)
class JobSpec:
    """What a job runs. ``split_seed`` splits the dataset for the defense; a ``defend_then_audit`` request must
    use the same one (else the defense would train on rows the attacker later uses)."""

    kind: JobKind
    dataset: str | None = None
    base: str | None = None  #: the checkpoint a defense starts from
    split_seed: int = 0
    defense: DefenseSpec | None = None
    request: AuditRequest | None = None
    optuna_storage: str | None = None  #: Optuna storage URL of the audit's studies (None: ``audit/optuna.db``)

    def __post_init__(self) -> None:
        kind = canonical_kind(self.kind)
        object.__setattr__(self, "kind", kind)
        if kind != "audit" and (self.defense is None or self.base is None or self.dataset is None):
            raise ConfigError(f"a {kind} job needs a defense, a base checkpoint and a dataset")
        if kind != "defend" and self.request is None:
            raise ConfigError(f"a {kind} job needs an audit request")
        if kind == "audit" and self.defense is not None:
            raise ConfigError("an audit job runs no defense: use kind defend_then_audit")
        if kind == "defend_then_audit" and self.request is not None and self.request.split_seed != self.split_seed:
            raise ConfigError(f"the audit's split_seed ({self.request.split_seed}) must be the defense's ({self.split_seed}): "
                              "the defense trains on the train split, the attacker on the attack pool of the same split")

    def replace(self, **changes: Any) -> JobSpec:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain form (what a job row keeps and a Ray driver receives)."""
        out: dict[str, Any] = {"kind": self.kind, "split_seed": self.split_seed}
        for key in ("dataset", "base", "optuna_storage"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.defense is not None:
            out["defense"] = self.defense.to_dict()
        if self.request is not None:
            out["request"] = self.request.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], kind: str | None = None) -> JobSpec:
        """Inverse of :meth:`to_dict`; ``kind`` (the runner's) wins over ``data["kind"]`` (they must agree).

        Also reads the older plain form: ``censor_config`` (MLACConfig fields) for an ``mlac`` defense, and no
        ``split_seed`` (then the request's, else 0)."""
        given = kind if kind is not None else data.get("kind")
        if given is None:
            raise ConfigError("a job spec needs its kind")
        canon = canonical_kind(str(given))
        if kind is not None and data.get("kind") is not None and canonical_kind(str(data["kind"])) != canon:
            raise ConfigError(f"job kind {kind!r} does not match the spec's {data['kind']!r}")
        check_plain(str(given), data)
        request = AuditRequest.from_dict(dict(data["request"])) if data.get("request") is not None else None
        defense: DefenseSpec | None = None
        if canon != "audit":
            if data.get("defense") is not None:
                if "censor_config" in data:
                    raise ConfigError("give either defense or censor_config, not both")
                defense = DefenseSpec.from_dict(data["defense"])
            else:
                defense = DefenseSpec.build("mlac", overrides=dict(data.get("censor_config") or {}))
        split_seed = data.get("split_seed", request.split_seed if request is not None else 0)
        return cls(kind=canon, dataset=_opt_str(data.get("dataset")), base=_opt_str(data.get("base")),
                   split_seed=int(split_seed), defense=defense, request=request,
                   optuna_storage=_opt_str(data.get("optuna_storage")))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def default_defend(progress: Progress | None, should_stop: ShouldStop | None) -> Defend:
    """Run a defense in this process (its progress events go to ``progress``)."""

    def defend(call: DefenseCall) -> str:
        return run_defense(call, progress=progress, should_stop=should_stop).checkpoint

    return defend


def failed_outcome(exc: BaseException, *, stopped: bool, describe: DescribeFailure | None = None) -> JobOutcome:
    """How an exception ends a job: a stop is CANCELLED; an error a stop interrupted (not a user error) is CANCELLED
    with its traceback; anything else FAILED with its one-line cause and the traceback apart."""
    if isinstance(exc, StoppedError):
        return JobOutcome("CANCELLED", failure=JobFailure(str(exc) or "cancelled"))
    failure = (describe or failure_of)(exc)
    if stopped and not isinstance(exc, MlacError):
        return JobOutcome("CANCELLED", failure=JobFailure("cancelled", failure.detail))
    return JobOutcome("FAILED", failure=failure)


def run_job(spec: JobSpec, out_dir: str | Path, *, progress: Progress | None = None,
            should_stop: ShouldStop | None = None, executor: TrialExecutor | None = None, defend: Defend | None = None,
            study_namespace: str | None = None, describe_failure: DescribeFailure | None = None) -> JobOutcome:
    """Run ``spec`` into ``out_dir``: defend, audit, or defend then audit the defended model. Never raises
    (an error becomes a FAILED or CANCELLED :class:`~mlac.contracts.JobOutcome`, see :func:`failed_outcome`).

    ``progress`` receives the defense's records (with ``stage="censor"`` and ``defense``) and the audit's events;
    ``should_stop`` is polled by both; ``executor`` runs the trials (default: in this process); ``defend`` runs the
    defense (default: :func:`~mlac.defenses.run_defense` here); ``study_namespace`` goes into every study name
    (the service passes the job id); ``describe_failure`` turns an exception into a :class:`JobFailure`.
    """
    emit = progress or (lambda event: None)
    try:
        return _run(spec, Path(out_dir), emit, should_stop, executor, defend, study_namespace)
    except Exception as exc:
        return failed_outcome(exc, stopped=bool(should_stop and should_stop()), describe=describe_failure)


def _run(spec: JobSpec, out: Path, emit: Progress, should_stop: ShouldStop | None, executor: TrialExecutor | None,
         defend: Defend | None, study_namespace: str | None) -> JobOutcome:
    from mlac.audit.runner import run_audit

    out.mkdir(parents=True, exist_ok=True)
    defended: str | None = None
    if spec.defense is not None:
        assert spec.base is not None and spec.dataset is not None  # JobSpec checks it
        name = spec.defense.name
        emit({"stage": "censor", "defense": name})
        call = DefenseCall(defense=spec.defense, base=spec.base, dataset=spec.dataset, split_seed=spec.split_seed,
                           out_dir=str(out / DEFENDED_DIR))
        run = defend or default_defend(lambda e: emit({**e, "stage": "censor", "defense": name}), should_stop)
        defended = run(call)
        if spec.kind == "defend":
            return JobOutcome("SUCCEEDED", result_path=defended)
    assert spec.request is not None  # JobSpec checks it
    request = spec.request
    if defended is not None:
        request = request.replace(models=(*request.models, defended))
    audit_dir = out / AUDIT_DIR
    result = run_audit(request, audit_dir, progress=emit, should_stop=should_stop, executor=executor,
                       storage_url=spec.optuna_storage, study_namespace=study_namespace)
    verdict = result.verdict
    return JobOutcome("SUCCEEDED", result_path=str(audit_dir), verdict=str(verdict.status) if verdict is not None else None)


__all__ = ["JOB_KINDS", "KIND_ALIASES", "Defend", "JobKind", "JobSpec", "audits", "canonical_kind", "check_plain",
           "default_defend", "defends", "failed_outcome", "run_job"]
