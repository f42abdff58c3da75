"""Typed data that crosses layers (core -> workers -> service): one definition of each, with its plain form.

Every layer passes these objects; only a process boundary (a Ray actor's return value, a JSON column, an
HTTP body) turns them into plain dicts, with :meth:`to_dict` on one side and :meth:`from_dict` on the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from mlac.job_failure import JobFailure, one_line

JobState = Literal["SUCCEEDED", "FAILED", "CANCELLED"]
JOB_END_STATES: tuple[JobState, ...] = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: its state, where its result lies, the audit's verdict (None for a job without one) and,
    for a failed or cancelled job, why (a one-line cause and the traceback apart)."""

    state: JobState
    result_path: str | None = None
    verdict: str | None = None
    failure: JobFailure | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain form (what a Ray driver actor returns); the failure's keys are ``error`` and ``error_detail``."""
        failure = self.failure.to_dict() if self.failure is not None else {"error": None, "error_detail": None}
        return {"state": self.state, "result_path": self.result_path, "verdict": self.verdict, **failure}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobOutcome:
        """Inverse of :meth:`to_dict` (an unknown state is a ValueError: that is a bug, not user input)."""
        state = data.get("state")
        if state not in JOB_END_STATES:
            raise ValueError(f"not a job end state: {state!r}")
        verdict = data.get("verdict")
        return cls(state=state, result_path=data.get("result_path"),
                   verdict=one_line(str(verdict)) if verdict else None, failure=JobFailure.from_outcome(data))


@dataclass(frozen=True)
class StudyKey:
    """One search: which model (label + checkpoint directory), task, data size n and attacker seed.

    :meth:`label` is the one name of a study that people and records read (``model:task:n20:s0``); the
    Optuna study name is something else: a hash of everything that determines the trials
    (:func:`mlac.audit.study.study_name`)."""

    model: str
    checkpoint: str
    task: str
    n: int
    seed: int

    def label(self, sep: str = ":") -> str:
        """``model:task:n20:s0`` (the job store's trial records); ``sep`` for where ``:`` cannot go (file names)."""
        return study_label(self.model, self.task, self.n, self.seed, sep)

    def tag(self) -> dict[str, Any]:
        """The study's identity as a trial spec's ``tag`` carries it (and as result records spell it)."""
        return {"model": self.model, "task": self.task, "n": self.n, "seed": self.seed}


def study_label(model: object, task: object, n: object, seed: object, sep: str = ":") -> str:
    """The label format of :meth:`StudyKey.label`, for callers that hold the four parts without a checkpoint
    (a trial spec's tag, a progress event)."""
    return sep.join((str(model), str(task), f"n{n}", f"s{seed}"))


#: Keys of a trial result that say where an executor ran it (kept as the trial's "placement" user attribute).
PLACEMENT_KEYS = ("node_id", "worker_pid")


@dataclass(frozen=True)
class TrialResult:
    """What one attack trial returned: a :class:`~mlac.attacks.TrialOutcome`'s fields when ``ok``, else the
    ``error`` (a traceback, or the one-line message of an input error: ``user_error``); ``node_id`` and
    ``worker_pid`` say where an executor ran it, ``reused`` that a stored result of the same spec was returned.
    ``report_predictions`` (the report rows' predicted labels) is set only for a trial asked to log samples.

    :func:`mlac.audit.trial.run_trial` returns one; executors send :meth:`to_dict` across processes (a Ray
    task's return value, the worker's trial store file) and the study driver reads it back with
    :meth:`from_dict`. The plain form is exactly what the trial store and Optuna's user attributes keep."""

    ok: bool
    error: str | None = None
    user_error: bool = False
    selection_curve: tuple[tuple[int, float], ...] = ()
    best_selection_accuracy: float = 0.0
    best_step: int = 0
    report_accuracy: float | None = None
    steps_run: int = 0
    pruned: bool = False
    wall_s: float = 0.0
    flops: float = 0.0
    report_majority_rate: float | None = None
    seen_ids: dict[str, list[str]] = field(default_factory=dict)
    report_predictions: tuple[int, ...] | None = None
    node_id: str | None = None
    worker_pid: int | None = None
    reused: bool = False

    @classmethod
    def succeeded(cls, outcome: Any) -> TrialResult:
        """From a :class:`~mlac.attacks.TrialOutcome` (typed ``Any``: contracts import nothing of torch)."""
        return cls.from_dict({"ok": True, **outcome.to_dict()})

    @classmethod
    def failed(cls, error: str, *, user_error: bool) -> TrialResult:
        """A trial that raised: its traceback (or an input error's message)."""
        return cls(ok=False, error=error, user_error=user_error)

    def placed(self, node_id: str | None, worker_pid: int | None) -> TrialResult:
        """A copy that says where it ran."""
        return replace(self, node_id=node_id, worker_pid=worker_pid)

    def outcome(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The named outcome fields, plain (what the driver keeps in Optuna's user attributes)."""
        plain = self.to_dict()
        return {k: plain[k] for k in keys if k in plain}

    def placement(self) -> dict[str, Any]:
        """Where it ran (empty when the executor did not say)."""
        return {k: v for k, v in (("node_id", self.node_id), ("worker_pid", self.worker_pid)) if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form: ``{"ok": True, **TrialOutcome.to_dict()}`` or ``{"ok": False, "error",
        "user_error"}``, plus the placement keys that are set, ``reused`` when true and ``report_predictions``
        when set (absent otherwise: the plain form of a trial that logged no samples is what it always was)."""
        if self.ok:
            out: dict[str, Any] = {
                "ok": True, "selection_curve": [[int(s), float(a)] for s, a in self.selection_curve],
                "best_selection_accuracy": self.best_selection_accuracy, "best_step": self.best_step,
                "report_accuracy": self.report_accuracy, "steps_run": self.steps_run, "pruned": self.pruned,
                "wall_s": self.wall_s, "flops": self.flops, "report_majority_rate": self.report_majority_rate,
                "seen_ids": {k: list(v) for k, v in self.seen_ids.items()},
            }
            if self.report_predictions is not None:
                out["report_predictions"] = list(self.report_predictions)
        else:
            out = {"ok": False, "error": self.error, "user_error": self.user_error}
        out.update(self.placement())
        if self.reused:
            out["reused"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_dict`. Absent outcome fields take the defaults above (an executor that measures
        no time or FLOPs may leave them out); ``ok`` is required, and an ok result needs its selection
        accuracy and ``pruned`` (the search cannot tell Optuna anything without them)."""
        if "ok" not in data:
            raise ValueError(f"not a trial result (no 'ok'): keys {sorted(data)}")
        node_id, worker_pid, reused = data.get("node_id"), data.get("worker_pid"), bool(data.get("reused", False))
        if not data["ok"]:
            error = data.get("error")
            return cls(ok=False, error=str(error) if error is not None else None,
                       user_error=bool(data.get("user_error", False)), node_id=node_id, worker_pid=worker_pid,
                       reused=reused)
        missing = [k for k in ("best_selection_accuracy", "pruned") if k not in data]
        if missing:
            raise ValueError(f"a successful trial result needs {missing}; keys {sorted(data)}")
        # Values pass through unconverted: the plain form read back must be the plain form written.
        predictions = data.get("report_predictions")
        return cls(
            ok=True, selection_curve=tuple((s, a) for s, a in data.get("selection_curve", ())),
            best_selection_accuracy=data["best_selection_accuracy"], best_step=data.get("best_step", 0),
            report_accuracy=data.get("report_accuracy"), steps_run=data.get("steps_run", 0), pruned=data["pruned"],
            wall_s=data.get("wall_s", 0.0), flops=data.get("flops", 0.0),
            report_majority_rate=data.get("report_majority_rate"), seen_ids=dict(data.get("seen_ids") or {}),
            report_predictions=tuple(predictions) if predictions is not None else None, node_id=node_id, worker_pid=worker_pid, reused=reused,
        )


#: Stages of an audit, in order (a censor job's events carry ``censor``).
AUDIT_STAGES = ("prepare", "baselines", "search", "report", "done")


@dataclass(frozen=True)
class ProgressEvent:
    """One progress event of an audit (:func:`mlac.audit.runner.run_audit`'s ``progress`` callback gets its
    :meth:`to_dict`, which crosses the Ray driver actor and lands in the job store's event log and live progress).

    ``stage`` always; ``building`` while a baseline is built; during ``search``: which study (index, model,
    task, n, seed), studies and trials done out of their totals (trials: an upper bound), the study's
    ``best_so_far`` (best selection accuracy of a completed trial; the seed's point once it is done) and,
    for a finished trial, ``trial`` (Optuna's number), ``ok``, ``value``/``pruned`` (ok trials) and ``replayed``
    (announced again from the storage on resume: a record, not new work); ``point`` when a study finished;
    ``eta_s`` where the emitter has its own estimate."""

    stage: str
    study: int | None = None
    studies_done: int | None = None
    studies_total: int | None = None
    trials_done: int | None = None
    trials_total: int | None = None
    model: str | None = None
    task: str | None = None
    n: int | None = None
    seed: int | None = None
    best_so_far: float | None = None
    ok: bool | None = None
    trial: int | None = None
    value: float | None = None
    pruned: bool | None = None
    replayed: bool = False
    point: float | None = None
    building: str | None = None
    eta_s: float | None = None

    @classmethod
    def finished_trial(cls, trial: int, *, ok: bool, value: float | None = None, pruned: bool | None = None,
                       replayed: bool = False) -> ProgressEvent:
        """What a study driver announces for one finished trial (the runner adds the study and the counts)."""
        return cls(stage="search", ok=ok, trial=trial, value=value if ok else None, pruned=pruned if ok else None,
                   replayed=replayed)

    def study_label(self) -> str | None:
        """:meth:`StudyKey.label` of the event's study (None outside one)."""
        if self.model is None:
            return None
        return study_label(self.model, self.task, self.n, self.seed)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of JSON scalars: unset fields are left out, except ``best_so_far`` during the search (None
        until a trial completes) and ``value`` of an ok trial (None for a replayed trial that reported nothing)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            keep = bool(value) if f.name == "replayed" else value is not None
            if f.name == "best_so_far" and self.stage == "search" and self.study is not None:
                keep = True
            if f.name == "value" and self.ok and self.trial is not None:
                keep = True
            if keep:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProgressEvent:
        """The known keys of a plain event (others, such as the event log's ``t``, are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
