"""Optuna search of one (model, task, n, seed): TPE, pruning, patience, resume, reruns of the winner.

The driver asks Optuna for trials and tells it their results (ask/tell); the trials themselves run
through a :class:`TrialExecutor`, which receives plain dicts (:class:`~mlac.audit.trial.TrialSpec`)
and returns plain dicts, so the Ray layer can run a batch of them in parallel on other machines.
Pruning needs no storage access from the workers: each spec carries the curves of the trials already
finished (:class:`~mlac.audit.trial.PruneRule`, the median rule).

Resume: the study name is deterministic and the storage persistent, so a second run of the same
search loads the study, counts its finished trials toward the budget and re-runs only what is left
(trials left RUNNING by a crash are marked FAIL and their parameters enqueued again). Reruns of the
winning configuration are recorded in the study's user attributes and reused too.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState

from mlac.audit.attacks import KINDS, OPTIMIZERS, SCHEDULES, AttackParams
from mlac.audit.trial import PruneRule, TrialSpec, WorkerContext, run_trial
from mlac.errors import ConfigError, MlacError, StoppedError

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]


class SearchError(MlacError):
    """Every trial of a search failed: the first traceback is in the message."""

    code = "search_failed"


def derived_seed(*parts: object) -> int:
    """A 31-bit seed derived from ``parts`` (stable across processes and Python versions)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


@dataclass(frozen=True)
class SearchSpace:
    """The attacker's hyperparameter space (default: PROTOCOL.md's reference space)."""

    lr_low: float = 1e-5
    lr_high: float = 1e-2
    steps_min: int = 100
    steps_max: int = 1000
    steps_step: int = 100
    batch_sizes: tuple[int, ...] = (12, 24, 48)
    kinds: tuple[str, ...] = ("probe", "full")
    optimizers: tuple[str, ...] = ("adam",)
    schedules: tuple[str, ...] = ("constant",)
    weight_decays: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "kinds", "optimizers", "schedules", "weight_decays"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if not value:
                raise ConfigError(f"the search space is empty: {name} has no values; give at least one")
        if not (0 < self.lr_low <= self.lr_high) or not math.isfinite(self.lr_high):
            raise ConfigError(f"the lr range must satisfy 0 < low <= high, got [{self.lr_low}, {self.lr_high}]")
        if not (1 <= self.steps_min <= self.steps_max) or self.steps_step < 1:
            raise ConfigError(f"the steps range is empty: [{self.steps_min}, {self.steps_max}] by {self.steps_step}")
        for bad, allowed, name in ((self.kinds, KINDS, "kinds"), (self.optimizers, OPTIMIZERS, "optimizers"),
                                   (self.schedules, SCHEDULES, "schedules")):
            unknown = sorted(set(bad) - set(allowed))
            if unknown:
                raise ConfigError(f"unknown {name} {unknown}; choose from {allowed}")
        if any(b < 1 for b in self.batch_sizes):
            raise ConfigError("batch sizes must be at least 1")

    def suggest(self, trial: optuna.Trial) -> AttackParams:
        """Draw one configuration (dimensions with a single value are fixed, not searched)."""

        def choice(name: str, values: tuple[Any, ...]) -> Any:
            return values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))

        lr = self.lr_low if self.lr_low == self.lr_high else trial.suggest_float("lr", self.lr_low, self.lr_high, log=True)
        steps = self.steps_min
        if self.steps_max > self.steps_min:
            high = self.steps_min + (self.steps_max - self.steps_min) // self.steps_step * self.steps_step
            steps = trial.suggest_int("steps", self.steps_min, high, step=self.steps_step)
        return AttackParams(
            kind=choice("kind", self.kinds), lr=lr, steps=steps, batch_size=choice("batch_size", self.batch_sizes),
            optimizer=choice("optimizer", self.optimizers), schedule=choice("schedule", self.schedules),
            weight_decay=choice("weight_decay", self.weight_decays),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return asdict(self)


@dataclass(frozen=True)
class SearchConfig:
    """Budget and rules of one search (defaults: PROTOCOL.md's, except reruns 5 instead of 15)."""

    max_trials: int = 50
    patience: int = 15
    reruns: int = 5
    eval_every: int = 50
    parallelism: int = 1
    tpe_startup_trials: int = 10
    prune: bool = True
    prune_min_reference: int = 3
    prune_warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.max_trials < 1 or self.patience < 1 or self.reruns < 1 or self.eval_every < 1 or self.parallelism < 1:
            raise ConfigError("max_trials, patience, reruns, eval_every and parallelism must all be at least 1")


@dataclass(frozen=True)
class StudyKey:
    """One search: which model (label + checkpoint), task, n and seed."""

    model: str
    checkpoint: str
    task: str
    n: int
    seed: int

    def name(self, audit_id: str) -> str:
        """Deterministic Optuna study name (same audit + key -> same study -> resume)."""
        return f"mlac-audit:{audit_id}:{self.model}:{self.task}:n{self.n}:s{self.seed}"


@dataclass
class StudyResult:
    """Outcome of one search: the seed's point (mean report accuracy of the reruns) and its history."""

    key: StudyKey
    report_accuracy: float
    selection_accuracy: float
    rerun_accuracies: list[float]
    best_params: dict[str, Any]
    trials_run: int
    trials_executed_now: int
    attacker_wall_s: float
    attacker_flops: float
    trial_history: list[dict[str, Any]] = field(default_factory=list)
    failed_trials: int = 0


class TrialExecutor(Protocol):
    """Runs a batch of trial specs (plain dicts) and returns their result dicts, in the same order."""

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec (possibly in parallel); a failure is a result dict with ``ok=False``."""
        ...


class InProcessExecutor:
    """Runs trials one after the other in this process, sharing one :class:`WorkerContext`."""

    def __init__(self, context: WorkerContext | None = None) -> None:
        self.context = context if context is not None else WorkerContext()
        self.executed = 0

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run ``specs`` sequentially."""
        out = []
        for spec in specs:
            self.executed += 1
            out.append(run_trial(dict(spec), self.context))
        return out


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna storage for ``url``: None = in memory; ``journal:PATH`` or a ``.journal``/``.log`` path = a
    journal file (multi-process safe, no database driver); any SQLAlchemy URL (``sqlite:///x.db``,
    ``postgresql://...``) = Optuna's RDB storage."""
    if url is None or url == "memory":
        return None
    if url.startswith("journal:") or url.endswith((".journal", ".log")):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    raise ConfigError(f"unknown Optuna storage {url!r}: use 'journal:PATH', a path ending in .journal, or a database URL")


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]


def _curve(t: FrozenTrial) -> list[tuple[int, float]]:
    return [(int(s), float(v)) for s, v in sorted(t.intermediate_values.items())]


def _since_best(trials: list[FrozenTrial]) -> int:
    best, since = -math.inf, 0
    for t in sorted(trials, key=lambda t: t.number):
        value = t.value if t.state == TrialState.COMPLETE and t.value is not None else None
        if value is not None and value > best:
            best, since = value, 0
        else:
            since += 1
    return since


def _recover_stale(study: optuna.Study) -> None:
    """Trials left RUNNING/WAITING by an interrupted run: mark them failed and queue their params again."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study._storage.set_trial_user_attr(t._trial_id, "error", "interrupted: re-queued on resume")
        if t.params:
            study.enqueue_trial(dict(t.params), skip_if_exists=False)


class StudyDriver:
    """Runs one search end to end (see the module docstring)."""

    def __init__(
        self,
        key: StudyKey,
        base_spec: TrialSpec,
        space: SearchSpace,
        config: SearchConfig,
        *,
        audit_id: str,
        storage: optuna.storages.BaseStorage | None,
        executor: TrialExecutor,
        should_stop: ShouldStop | None = None,
        on_trial: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.key, self.base_spec, self.space, self.config = key, base_spec, space, config
        self.executor, self.should_stop, self.on_trial = executor, should_stop, on_trial
        sampler = TPESampler(seed=derived_seed("tpe", key.seed, key.task, key.n, key.model),
                             constant_liar=True, n_startup_trials=config.tpe_startup_trials)
        self.study = optuna.create_study(study_name=key.name(audit_id), storage=storage, sampler=sampler,
                                         direction="maximize", load_if_exists=True)
        self.executed_now = 0

    def _spec(self, params: AttackParams, trial_seed: int, prune: PruneRule | None) -> dict[str, Any]:
        return replace(
            self.base_spec, params=params.to_dict(), trial_seed=trial_seed,
            prune=prune.to_dict() if prune is not None else None,
        ).to_dict()

    def _prune_rule(self) -> PruneRule | None:
        if not self.config.prune:
            return None
        ref = tuple(tuple(_curve(t)) for t in _finished(self.study) if t.state != TrialState.FAIL and t.intermediate_values)
        return PruneRule(ref, self.config.prune_min_reference, self.config.prune_warmup_steps)

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise StoppedError(f"search {self.study.study_name} stopped; run again with the same storage to resume")

    def search(self) -> None:
        """Run trials until ``max_trials`` are finished or ``patience`` trials brought no improvement."""
        _recover_stale(self.study)
        while True:
            done = _finished(self.study)
            left = self.config.max_trials - len(done)
            if left <= 0 or _since_best(done) >= self.config.patience:
                return
            self._check_stop()
            batch = min(left, self.config.parallelism)
            asked, specs = [], []
            rule = self._prune_rule()
            for _ in range(batch):
                trial = self.study.ask()
                params = self.space.suggest(trial)
                seed = derived_seed("trial", self.key.seed, self.key.task, self.key.n, trial.number)
                asked.append((trial, params))
                specs.append(self._spec(params, seed, rule))
            results = self.executor.map(specs)
            self.executed_now += len(results)
            for (trial, params), result in zip(asked, results, strict=True):
                self._tell(trial, params, result)

    def _tell(self, trial: optuna.Trial, params: AttackParams, result: dict[str, Any]) -> None:
        trial.set_user_attr("attack_params", params.to_dict())
        if not result.get("ok"):
            trial.set_user_attr("error", str(result.get("error", "unknown error"))[-8000:])
            self.study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d of %s failed: %s", trial.number, self.study.study_name, str(result.get("error"))[-300:])
            if self.on_trial:
                self.on_trial({"ok": False, "trial": trial.number})
            return
        for step, acc in result["selection_curve"]:
            trial.report(float(acc), int(step))
        for name in ("report_accuracy", "wall_s", "flops", "steps_run", "best_step"):
            trial.set_user_attr(name, result[name])
        if result["pruned"]:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, float(result["best_selection_accuracy"]))
        if self.on_trial:
            self.on_trial({"ok": True, "trial": trial.number, "value": result["best_selection_accuracy"],
                           "pruned": result["pruned"]})

    def best_trial(self) -> FrozenTrial:
        """The finished trial with the best selection accuracy (SearchError when every trial failed)."""
        complete = [t for t in _finished(self.study) if t.state == TrialState.COMPLETE and t.value is not None]
        if not complete:
            failed = [t for t in _finished(self.study) if t.state == TrialState.FAIL]
            first = failed[0].user_attrs.get("error", "") if failed else "no trial finished"
            raise SearchError(f"every trial of {self.study.study_name} failed or was pruned; first error:\n{first}")
        return max(complete, key=lambda t: (t.value, -t.number))

    def reruns(self, best: FrozenTrial) -> list[dict[str, Any]]:
        """Re-run the winning configuration ``reruns`` times (recorded in the study, reused on resume)."""
        stored = self.study.user_attrs.get("reruns")
        if isinstance(stored, dict) and stored.get("trial") == best.number and len(stored.get("results", [])) >= self.config.reruns:
            return list(stored["results"][: self.config.reruns])
        self._check_stop()
        params = AttackParams.from_dict(best.user_attrs["attack_params"])
        specs = [self._spec(params, derived_seed("rerun", self.key.seed, self.key.task, self.key.n, i), None)
                 for i in range(self.config.reruns)]
        results = self.executor.map(specs)
        self.executed_now += len(results)
        failed = [r for r in results if not r.get("ok")]
        if failed:
            raise SearchError(f"a rerun of the best configuration of {self.study.study_name} failed:\n{failed[0].get('error')}")
        keep = [{k: r[k] for k in ("report_accuracy", "best_selection_accuracy", "wall_s", "flops")} for r in results]
        self.study.set_user_attr("reruns", {"trial": best.number, "results": keep})
        return keep

    def history(self) -> list[dict[str, Any]]:
        """Best-so-far accuracies against trials searched and attacker compute (the attack-budget curve)."""
        rows, wall, flops = [], 0.0, 0.0
        best_sel, best_rep = -math.inf, None
        for t in sorted(_finished(self.study), key=lambda t: t.number):
            wall += float(t.user_attrs.get("wall_s", 0.0))
            flops += float(t.user_attrs.get("flops", 0.0))
            if t.state == TrialState.COMPLETE and t.value is not None and t.value > best_sel:
                best_sel, best_rep = t.value, t.user_attrs.get("report_accuracy")
            rows.append({
                "trial": t.number + 1, "wall_s_cum": wall, "flops_cum": flops,
                "best_report_acc_so_far": best_rep,
                "best_selection_acc_so_far": best_sel if best_sel > -math.inf else None,
            })
        return rows

    def run(self) -> StudyResult:
        """Search, re-run the winner, and summarise."""
        self.search()
        best = self.best_trial()
        reruns = self.reruns(best)
        finished = _finished(self.study)
        report = [float(r["report_accuracy"]) for r in reruns]
        return StudyResult(
            key=self.key,
            report_accuracy=sum(report) / len(report),
            selection_accuracy=sum(float(r["best_selection_accuracy"]) for r in reruns) / len(reruns),
            rerun_accuracies=report,
            best_params=dict(best.user_attrs["attack_params"]),
            trials_run=len(finished),
            trials_executed_now=self.executed_now,
            attacker_wall_s=sum(float(t.user_attrs.get("wall_s", 0.0)) for t in finished) + sum(float(r["wall_s"]) for r in reruns),
            attacker_flops=sum(float(t.user_attrs.get("flops", 0.0)) for t in finished) + sum(float(r["flops"]) for r in reruns),
            trial_history=self.history(),
            failed_trials=sum(1 for t in finished if t.state == TrialState.FAIL),
        )
