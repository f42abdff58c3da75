"""The study driver: the Optuna search of one (model, task, n, seed): TPE, pruning, patience, resume, reruns
of the winner.

The driver asks Optuna for trials and tells it their results (ask/tell); the trials themselves run
through a :class:`~mlac.audit.scheduling.TrialExecutor`, which receives plain dicts
(:class:`~mlac.audit.trial.TrialSpec`) and returns plain dicts (:class:`~mlac.contracts.TrialResult`, read
back at :meth:`StudyDriver.deliver`), so the Ray layer can run a batch of them in parallel on other machines.
Pruning needs no storage access from the workers: each spec carries the curves of the trials already
finished (:class:`~mlac.audit.trial.PruneRule`, the median rule).

A driver is a small state machine (:meth:`StudyDriver.next_specs` / :meth:`StudyDriver.deliver`):
:func:`~mlac.audit.scheduling.run_studies_lockstep` keeps several studies in flight and sends their batches to the executor
together, so a parallel executor stays busy while every study's own sequence of asks and tells, and
hence its result, is exactly what it would be alone.

Strength: with ``grid_start`` the study begins with the reference grid (:func:`reference_grid`,
enqueued before any TPE trial), so the searched attacker is never weaker on the selection split than
that grid; patience starts counting only once the grid has run. The space, the budget and the grid are
in :mod:`mlac.audit.space`, the storages in :mod:`mlac.audit.storage`.

Resume: the study name is a hash of everything that determines the study's trials (model sha256,
task, n, seed, dataset fingerprint, split and trial settings, search space, sampler and pruning
settings) and the storage is persistent, so a second run of the same search loads the study, counts
its finished trials toward the budget and runs only what is left. Trials left RUNNING by a crash are
run again under their own trial numbers, with their own parameters, seeds and pruning references, before
anything new is asked: they consume no extra budget and the study ends exactly as an undisturbed one.
Reruns of the winning configuration are recorded in the study's user attributes and reused too (with
``log_samples``, their per-example report predictions are recorded beside them, and reruns stored without
predictions are run again to get them). The
budget (``max_trials``, ``patience``, ``reruns``) is not part of the name: a larger budget continues the
same study. A study written by another major version of Optuna is refused (its sampler would not
continue the same sequence).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState

from mlac.attacks import AttackParams
from mlac.audit.samples import PREDICTIONS_ATTR, decode_predictions, encode_predictions
from mlac.audit.space import SearchConfig, SearchSpace, derived_seed, reference_grid
from mlac.audit.storage import check_study_version
from mlac.audit.trial import PruneRule, TrialSpec
from mlac.contracts import ProgressEvent, StudyKey, TrialResult
from mlac.errors import ConfigError, MlacError, StoppedError

if TYPE_CHECKING:
    from mlac.audit.scheduling import TrialExecutor

#: What a finished trial's "outcome" user attribute keeps.
OUTCOME_KEYS = ("report_accuracy", "wall_s", "flops", "steps_run", "best_step", "report_majority_rate")
#: What each rerun of the winner keeps.
RERUN_KEYS = ("report_accuracy", "best_selection_accuracy", "wall_s", "flops", "report_majority_rate")
#: Study user attribute: the sampler settings a study was run with.
SAMPLER_ATTR = "sampler"
log = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]
#: Called once per finished trial (:meth:`ProgressEvent.finished_trial`), replayed ones included.
OnTrial = Callable[[ProgressEvent], None]


class SearchError(MlacError):
    """Every trial of a search failed: the first traceback is in the message."""

    code = "search_failed"


def study_identity(key: StudyKey, base_spec: TrialSpec, space: SearchSpace, config: SearchConfig, *,
                   model_sha: str, data_fingerprint: str, namespace: str | None = None) -> dict[str, Any]:
    """Everything that determines a study's trials (and nothing that only sizes its budget).

    ``namespace`` (the service passes the job id) keeps the studies of two jobs with the same request
    apart in one shared database: without it they would drive the same studies, at the same time if both
    run. A resumed job keeps its id, so it still finds its own finished trials."""
    spec = base_spec.to_dict()
    for volatile in ("checkpoint", "dataset", "params", "trial_seed", "prune", "device", "record_ids", "tag",
                     "log_samples"):
        spec.pop(volatile, None)
    sampler = {k: v for k, v in asdict(config).items() if k not in ("max_trials", "patience", "reruns")}
    identity = {"model_sha256": model_sha, "data": data_fingerprint, "task": key.task, "n": key.n, "seed": key.seed,
                "trial": spec, "space": space.to_dict(), "search": sampler}
    if namespace is not None:
        identity["namespace"] = namespace
    return identity


def study_name(key: StudyKey, identity: dict[str, Any]) -> str:
    """Deterministic Optuna study name: a readable prefix (``mlac-audit:<model>:<task>:n<n>:s<seed>``, what
    optuna-dashboard lists) and a hash of :func:`study_identity` (what makes it unique)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    model = "".join(c if c.isalnum() or c in "-_." else "_" for c in key.model)[:80]
    return f"mlac-audit:{model}:{key.task}:n{key.n}:s{key.seed}:{digest}"


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
    majority_rate: float | None = None
    #: Per rerun, the predicted label of every report-split row (report row order); None without ``log_samples``.
    rerun_predictions: list[list[int]] | None = None



def _finished(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]


def _curve(t: FrozenTrial) -> list[tuple[int, float]]:
    return [(int(s), float(v)) for s, v in sorted(t.intermediate_values.items())]


def _outcome(t: FrozenTrial) -> dict[str, Any]:
    """What a finished trial measured (report accuracy, wall seconds, FLOPs, steps); empty for a failure."""
    value = t.user_attrs.get("outcome")
    return value if isinstance(value, dict) else {}


def _since_best(trials: list[FrozenTrial]) -> int:
    """Trials since the last improvement; pruned trials do not count (a pruned trial was stopped by the
    rule, not shown to be worse, and counting it would end the search early exactly when pruning is busy)."""
    best, since = -math.inf, 0
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.PRUNED:
            continue
        value = t.value if t.state == TrialState.COMPLETE and t.value is not None else None
        if value is not None and value > best:
            best, since = value, 0
        else:
            since += 1
    return since



class StudyDriver:
    """Runs one search end to end (see the module docstring).

    Phases: ``search`` (batches of ``config.parallelism`` TPE trials until the budget or patience ends
    it), ``reruns`` (one batch: the winner ``config.reruns`` times), ``done``. :meth:`run` drives it
    with its own executor; :func:`~mlac.audit.scheduling.run_studies_lockstep` drives many drivers through one
    executor. ``log_samples``: the reruns (only they, never a search trial) also return the report split's
    per-example predictions, kept in the study (:data:`~mlac.audit.samples.PREDICTIONS_ATTR`) and in the result.
    """

    def __init__(
        self,
        key: StudyKey,
        base_spec: TrialSpec,
        space: SearchSpace,
        config: SearchConfig,
        *,
        model_sha: str,
        data_fingerprint: str,
        storage: optuna.storages.BaseStorage | None,
        executor: TrialExecutor | None = None,
        should_stop: ShouldStop | None = None,
        on_trial: OnTrial | None = None,
        namespace: str | None = None,
        log_samples: bool = False,
    ) -> None:
        self.key, self.base_spec, self.space, self.config = key, base_spec, space, config
        self.log_samples = log_samples
        self.executor, self.should_stop, self.on_trial = executor, should_stop, on_trial
        self.identity = study_identity(key, base_spec, space, config, model_sha=model_sha, data_fingerprint=data_fingerprint,
                                       namespace=namespace)
        self.study = optuna.create_study(study_name=study_name(key, self.identity), storage=storage,
                                         sampler=self._sampler(0), direction="maximize", load_if_exists=True)
        check_study_version(self.study)
        fresh = not self.study.get_trials(deepcopy=False)
        if fresh:
            self.study.set_user_attr(SAMPLER_ATTR, config.sampler_settings())
            for name, value in (("model", key.model), ("task", key.task), ("n", key.n), ("seed", key.seed),
                                ("model_sha256", model_sha), ("data_fingerprint", data_fingerprint),
                                ("namespace", namespace)):
                self.study.set_user_attr(name, value)  # what optuna-dashboard shows beside the study
            if config.grid_start:
                for params in reference_grid(space):
                    self.study.enqueue_trial(space.fixed_params(params), skip_if_exists=False)
        #: Trials a crash left RUNNING: run again first, under their own numbers and seeds.
        self._stale = sorted(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)), key=lambda t: t.number)
        self.executed_now = 0
        self.phase = "search"
        self._asked: list[tuple[optuna.Trial, AttackParams]] = []
        self._best: FrozenTrial | None = None
        self._reruns: list[dict[str, Any]] | None = None
        self._predictions: list[list[int]] | None = None
        if on_trial is not None:
            self._replay()

    def _replay(self) -> None:
        """Announce the trials a previous run already finished (``replayed``: True), so that a job store that
        lost their records in a crash rebuilds them from the Optuna storage (records are written once)."""
        assert self.on_trial is not None
        for t in sorted(_finished(self.study), key=lambda t: t.number):
            if t.state == TrialState.FAIL:
                self.on_trial(ProgressEvent.finished_trial(t.number, ok=False, replayed=True))
            else:
                value = t.value if t.state == TrialState.COMPLETE else max((v for v in t.intermediate_values.values()), default=None)
                self.on_trial(ProgressEvent.finished_trial(t.number, ok=True, value=value,
                                                           pruned=t.state == TrialState.PRUNED, replayed=True))

    @property
    def done(self) -> bool:
        """Whether the search and the reruns are finished."""
        return self.phase == "done"

    def _spec(self, params: AttackParams, trial_seed: int, prune: PruneRule | None,
              log_samples: bool = False) -> dict[str, Any]:
        return replace(
            self.base_spec, params=params.to_dict(), trial_seed=trial_seed,
            prune=prune.to_dict() if prune is not None else None, log_samples=log_samples,
        ).to_dict()

    def _prune_rule(self, before: int) -> PruneRule | None:
        """The rule of a batch starting at trial number ``before``: the curves of the trials finished before it
        (rebuilt identically when a crashed batch is run again)."""
        if not self.config.prune:
            return None
        ref = tuple(tuple(_curve(t)) for t in sorted(_finished(self.study), key=lambda t: t.number)
                    if t.number < before and t.state != TrialState.FAIL and t.intermediate_values)
        return PruneRule(ref, self.config.prune_min_reference, self.config.prune_warmup_steps,
                         self.config.prune_warmup_fraction)

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise StoppedError(f"search {self.study.study_name} stopped; run again with the same storage to resume")

    def _search_left(self) -> int:
        done = _finished(self.study)
        left = self.config.max_trials - len(done)
        grid_pending = bool(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        if not grid_pending and _since_best(done) >= self.config.patience:
            return 0
        return max(0, left)

    def next_specs(self) -> list[dict[str, Any]]:
        """The next batch of trial specs to run; empty only once the driver is :attr:`done`."""
        if self.phase == "search" and self._stale:
            return self._resume_batch()
        if self.phase == "search":
            left = self._search_left()
            if left:
                return self._search_batch(min(left, self.config.parallelism))
            self._best = self.best_trial()
            stored = self._stored_reruns(self._best)
            if stored is not None:
                self._reruns, self.phase = stored, "done"
                return []
            self.phase = "reruns"
            params = AttackParams.from_dict(self._best.user_attrs["attack_params"])
            return [self._spec(params, derived_seed("rerun", self.key.seed, self.key.task, self.key.n, i), None,
                               log_samples=self.log_samples)
                    for i in range(self.config.reruns)]
        return []

    def _sampler(self, number: int) -> TPESampler:
        """TPE seeded from (seed, task, n, trial number): the configuration of trial k depends only on the
        trials before it, never on whether this process asked for them (a resumed study samples exactly
        what an uninterrupted one would; a sampler's own RNG would restart at resume and repeat its draws).
        The model is not in the seed: every model gets the same start-up configurations."""
        return TPESampler(seed=derived_seed("tpe", self.key.seed, self.key.task, self.key.n, number),
                          constant_liar=True, n_startup_trials=self.config.tpe_startup_trials)

    def _trial_seed(self, number: int) -> int:
        return derived_seed("trial", self.key.seed, self.key.task, self.key.n, number)

    def _search_batch(self, size: int) -> list[dict[str, Any]]:
        self._asked = []
        for _ in range(size):
            self.study.sampler = self._sampler(len(self.study.get_trials(deepcopy=False)))
            trial = self.study.ask()
            self._asked.append((trial, self.space.suggest(trial)))
        start = min(t.number for t, _ in self._asked)
        for trial, params in self._asked:  # stored now, so that a crash mid-batch can re-create the batch
            trial.set_user_attr("batch_start", start)
            trial.set_user_attr("attack_params", params.to_dict())
        rule = self._prune_rule(start)
        return [self._spec(p, self._trial_seed(t.number), rule) for t, p in self._asked]

    def _resume_batch(self) -> list[dict[str, Any]]:
        """The batch a crash interrupted, re-created: same trial numbers, parameters, seeds and prune rule."""
        stale, self._stale = self._stale, []
        self._asked = []
        specs = []
        for frozen in stale:
            self.study.sampler = self._sampler(frozen.number)  # only used if the crash came before suggest
            trial = optuna.Trial(self.study, frozen._trial_id)
            params = self.space.suggest(trial)
            if "attack_params" not in frozen.user_attrs:  # the crash came before the ask stored them
                trial.set_user_attr("attack_params", params.to_dict())
            self._asked.append((trial, params))
            rule = self._prune_rule(int(frozen.user_attrs.get("batch_start", frozen.number)))
            specs.append(self._spec(params, self._trial_seed(frozen.number), rule))
        log.info("study %s: re-running %d trial(s) a crash interrupted", self.study.study_name, len(specs))
        return specs

    def search(self) -> None:
        """The search phase only (no reruns), through this driver's own executor (benchmarks use it)."""
        if self.executor is None:
            raise ConfigError("StudyDriver.search needs an executor")
        while self.phase == "search" and (left := self._search_left()):
            self._check_stop()
            self.deliver(self.executor.map(self._search_batch(min(left, self.config.parallelism))))

    def deliver(self, plain_results: Sequence[dict[str, Any]]) -> None:
        """Results of the batch :meth:`next_specs` returned last, in the same order (plain
        :meth:`TrialResult.to_dict` forms, as executors return them)."""
        results = [TrialResult.from_dict(r) for r in plain_results]
        self.executed_now += len(results)
        if self.phase == "search":
            for (trial, _), result in zip(self._asked, results, strict=True):
                self._tell(trial, result)
            self._asked = []
        elif self.phase == "reruns":
            assert self._best is not None  # set when the reruns were asked for
            failed = [r for r in results if not r.ok]
            if failed:
                raise SearchError(f"a rerun of the best configuration of {self.study.study_name} failed:\n"
                                  f"{failed[0].error}")
            keep = [r.outcome(RERUN_KEYS) for r in results]
            if self.log_samples:
                self._predictions = self._keep_predictions(results)
            self.study.set_user_attr("reruns", {"trial": self._best.number, "results": keep})
            self._reruns, self.phase = keep, "done"

    def _keep_predictions(self, results: Sequence[TrialResult]) -> list[list[int]]:
        """The reruns' predictions, stored in the study beside the reruns (written first: a crash between the two
        leaves predictions without reruns, which are run again, never reruns that claim predictions)."""
        assert self._best is not None
        missing = [i for i, r in enumerate(results) if r.report_predictions is None]
        if missing:
            raise SearchError(f"reruns {missing} of {self.study.study_name} were asked for per-example predictions "
                              "(log_samples) and returned none: the executor does not pass them on")
        predictions = [list(r.report_predictions or ()) for r in results]
        self.study.set_user_attr(PREDICTIONS_ATTR, {"trial": self._best.number,
                                                    "predictions": [encode_predictions(p) for p in predictions]})
        return predictions

    def _tell(self, trial: optuna.Trial, result: TrialResult) -> None:
        """Record ``result`` (the parameters were stored when the trial was asked)."""
        if not result.ok:
            error = result.error if result.error is not None else "unknown error"
            trial.set_user_attr("error", error[-8000:])
            self.study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d of %s failed: %s", trial.number, self.study.study_name, str(result.error)[-300:])
            if self.on_trial:
                self.on_trial(ProgressEvent.finished_trial(trial.number, ok=False))
            return
        for step, acc in result.selection_curve:
            trial.report(float(acc), int(step))
        trial.set_user_attr("outcome", result.outcome(OUTCOME_KEYS))
        placement = result.placement()
        if placement:  # where an executor ran the trial (e.g. a Ray node id and worker pid)
            trial.set_user_attr("placement", placement)
        if result.pruned:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, float(result.best_selection_accuracy))
        if self.on_trial:
            self.on_trial(ProgressEvent.finished_trial(trial.number, ok=True, value=result.best_selection_accuracy,
                                                       pruned=result.pruned))

    def best_trial(self) -> FrozenTrial:
        """The finished trial with the best selection accuracy (SearchError when every trial failed)."""
        complete = [t for t in _finished(self.study) if t.state == TrialState.COMPLETE and t.value is not None]
        if not complete:
            failed = [t for t in _finished(self.study) if t.state == TrialState.FAIL]
            first = failed[0].user_attrs.get("error", "") if failed else "no trial finished"
            raise SearchError(f"every trial of {self.study.study_name} failed or was pruned; first error:\n{first}")
        return max(complete, key=lambda t: (t.value, -t.number))

    def _stored_reruns(self, best: FrozenTrial) -> list[dict[str, Any]] | None:
        """The reruns of ``best`` a previous run stored (the first ``config.reruns``), or None to run them. With
        ``log_samples`` they count only together with their stored predictions (else they are run again: same
        seeds, same configuration; the new results replace the stored ones)."""
        attrs = self.study.user_attrs
        stored = attrs.get("reruns")
        if not (isinstance(stored, dict) and stored.get("trial") == best.number
                and len(stored.get("results", [])) >= self.config.reruns):
            return None
        if self.log_samples:
            kept = attrs.get(PREDICTIONS_ATTR)
            if not (isinstance(kept, dict) and kept.get("trial") == best.number
                    and len(kept.get("predictions", [])) >= self.config.reruns):
                log.info("study %s: re-running the reruns for their per-example predictions", self.study.study_name)
                return None
            self._predictions = [decode_predictions(p) for p in kept["predictions"][: self.config.reruns]]
        return list(stored["results"][: self.config.reruns])

    def history(self) -> list[dict[str, Any]]:
        """Best-so-far accuracies against trials searched and attacker compute (the attack-budget curve)."""
        rows, wall, flops = [], 0.0, 0.0
        best_sel, best_rep = -math.inf, None
        for t in sorted(_finished(self.study), key=lambda t: t.number):
            outcome = _outcome(t)
            wall += float(outcome.get("wall_s", 0.0))
            flops += float(outcome.get("flops", 0.0))
            if t.state == TrialState.COMPLETE and t.value is not None and t.value > best_sel:
                best_sel, best_rep = t.value, outcome.get("report_accuracy")
            rows.append({
                "trial": t.number + 1, "wall_s_cum": wall, "flops_cum": flops,
                "best_report_acc_so_far": best_rep,
                "best_selection_acc_so_far": best_sel if best_sel > -math.inf else None,
            })
        return rows

    def result(self) -> StudyResult:
        """The seed's point and history (once :attr:`done`)."""
        if not self.done or self._best is None or self._reruns is None:
            raise SearchError(f"search {self.study.study_name} is not finished")
        finished = _finished(self.study)
        reruns = self._reruns
        report = [float(r["report_accuracy"]) for r in reruns]
        rates = [float(r["report_majority_rate"]) for r in reruns if r.get("report_majority_rate") is not None]
        return StudyResult(
            key=self.key,
            report_accuracy=sum(report) / len(report),
            selection_accuracy=sum(float(r["best_selection_accuracy"]) for r in reruns) / len(reruns),
            rerun_accuracies=report,
            best_params=dict(self._best.user_attrs["attack_params"]),
            trials_run=len(finished),
            trials_executed_now=self.executed_now,
            attacker_wall_s=sum(float(_outcome(t).get("wall_s", 0.0)) for t in finished) + sum(float(r["wall_s"]) for r in reruns),
            attacker_flops=sum(float(_outcome(t).get("flops", 0.0)) for t in finished) + sum(float(r["flops"]) for r in reruns),
            trial_history=self.history(),
            failed_trials=sum(1 for t in finished if t.state == TrialState.FAIL),
            majority_rate=max(rates) if rates else None,
            rerun_predictions=self._predictions if self.log_samples else None,
        )

    def run(self) -> StudyResult:
        """Search, re-run the winner, and summarise, through this driver's own executor."""
        if self.executor is None:
            raise ConfigError("StudyDriver.run needs an executor")
        while not self.done:
            self._check_stop()
            specs = self.next_specs()
            if specs:
                self.deliver(self.executor.map(specs))
        return self.result()

