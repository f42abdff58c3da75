"""Optuna search of one (model, task, n, seed): TPE, pruning, patience, resume, reruns of the winner.

The driver asks Optuna for trials and tells it their results (ask/tell); the trials themselves run
through a :class:`TrialExecutor`, which receives plain dicts (:class:`~mlac.audit.trial.TrialSpec`)
and returns plain dicts, so the Ray layer can run a batch of them in parallel on other machines.
Pruning needs no storage access from the workers: each spec carries the curves of the trials already
finished (:class:`~mlac.audit.trial.PruneRule`, the median rule).

A driver is a small state machine (:meth:`StudyDriver.next_specs` / :meth:`StudyDriver.deliver`):
:func:`run_studies_lockstep` keeps several studies in flight and sends their batches to the executor
together, so a parallel executor stays busy while every study's own sequence of asks and tells, and
hence its result, is exactly what it would be alone.

Strength: with ``grid_start`` the study begins with the reference grid (:func:`reference_grid`,
enqueued before any TPE trial), so the searched attacker is never weaker on the selection split than
that grid; patience starts counting only once the grid has run.

Resume: the study name is a hash of everything that determines the study's trials (model sha256,
task, n, seed, dataset fingerprint, split and trial settings, search space, sampler and pruning
settings) and the storage is persistent, so a second run of the same search loads the study, counts
its finished trials toward the budget and runs only what is left. Trials left RUNNING by a crash are
run again under their own trial numbers, with their own parameters, seeds and pruning references, before
anything new is asked: they consume no extra budget and the study ends exactly as an undisturbed one.
Reruns of the winning configuration are recorded in the study's user attributes and reused too. The
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
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState

from mlac.attacks import KINDS, OPTIMIZERS, SCHEDULES, AttackParams
from mlac.audit.trial import PruneRule, TrialSpec, WorkerContext, run_trial
from mlac.errors import ConfigError, MlacError, StoppedError

#: Optional keys an executor adds to a trial result to say where it ran; kept as the "placement" user attribute.
PLACEMENT_KEYS = ("node_id", "worker_pid")
#: What a finished trial's "outcome" user attribute keeps.
OUTCOME_KEYS = ("report_accuracy", "wall_s", "flops", "steps_run", "best_step", "report_majority_rate")
#: What each rerun of the winner keeps.
RERUN_KEYS = ("report_accuracy", "best_selection_accuracy", "wall_s", "flops", "report_majority_rate")
#: The reference grid the searched attacker must match (PROTOCOL.md, "What makes a verdict trustworthy").
GRID_LRS = (1e-4, 3e-4, 1e-3, 3e-3)
GRID_STEPS = (100, 300, 1000)
#: Study user attributes: the Optuna version that created the study and the sampler it was run with.
VERSION_ATTR, SAMPLER_ATTR = "optuna_version", "sampler"
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

    def fixed_params(self, params: AttackParams) -> dict[str, Any]:
        """``params`` as Optuna trial parameters (only the searched dimensions), for ``enqueue_trial``."""
        values = {"kind": params.kind, "batch_size": params.batch_size, "optimizer": params.optimizer,
                  "schedule": params.schedule, "weight_decay": params.weight_decay}
        dims = {"kind": self.kinds, "batch_size": self.batch_sizes, "optimizer": self.optimizers,
                "schedule": self.schedules, "weight_decay": self.weight_decays}
        out: dict[str, Any] = {k: v for k, v in values.items() if len(dims[k]) > 1}
        if self.lr_low != self.lr_high:
            out["lr"] = params.lr
        if self.steps_max > self.steps_min:
            out["steps"] = params.steps
        return out


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
    prune_warmup_fraction: float = 0.7
    grid_start: bool = False

    def __post_init__(self) -> None:
        if self.max_trials < 1 or self.patience < 1 or self.reruns < 1 or self.eval_every < 1 or self.parallelism < 1:
            raise ConfigError("max_trials, patience, reruns, eval_every and parallelism must all be at least 1")
        if not 0.0 <= self.prune_warmup_fraction <= 1.0 or self.prune_warmup_steps < 0:
            raise ConfigError("prune_warmup_fraction must be in [0, 1] and prune_warmup_steps >= 0")

    def sampler_settings(self) -> dict[str, Any]:
        """The sampler and pruner as the result records them (with the Optuna version)."""
        return {"optuna_version": optuna.__version__, "sampler": "TPESampler", "constant_liar": True,
                "n_startup_trials": self.tpe_startup_trials, "seeding": "sha256(tpe, seed, task, n, trial number)",
                "grid_start": self.grid_start, "pruner": "median of best-so-far at equal steps" if self.prune else None,
                "prune_min_reference": self.prune_min_reference, "prune_warmup_steps": self.prune_warmup_steps,
                "prune_warmup_fraction": self.prune_warmup_fraction, "pruned_trials_count_toward_patience": False}


def reference_grid(space: SearchSpace) -> list[AttackParams]:
    """The fixed reference attacker inside ``space``: every kind x lr in :data:`GRID_LRS` (those outside the
    space's lr range are replaced by its nearest end) at the largest :data:`GRID_STEPS` value the space
    allows, Adam (or the space's first optimizer), constant schedule, the smallest batch size.

    One run per (kind, lr) covers every grid steps value: the trial evaluates the selection split every
    ``eval_every`` steps and keeps its best checkpoint, so a 1000-step run with a constant schedule contains
    the 100- and 300-step runs (same seed, same data order) and can only choose better on selection."""
    high = space.steps_min + (space.steps_max - space.steps_min) // space.steps_step * space.steps_step
    allowed = [s for s in GRID_STEPS if space.steps_min <= s <= high]
    steps = max(allowed) if allowed else high
    lrs = sorted({min(max(lr, space.lr_low), space.lr_high) for lr in GRID_LRS})
    optimizer = "adam" if "adam" in space.optimizers else space.optimizers[0]
    schedule = "constant" if "constant" in space.schedules else space.schedules[0]
    return [AttackParams(kind=kind, lr=lr, steps=steps, batch_size=min(space.batch_sizes), optimizer=optimizer,
                         schedule=schedule, weight_decay=space.weight_decays[0])
            for kind in space.kinds for lr in lrs]


@dataclass(frozen=True)
class StudyKey:
    """One search: which model (label + checkpoint), task, n and seed."""

    model: str
    checkpoint: str
    task: str
    n: int
    seed: int



def study_identity(key: StudyKey, base_spec: TrialSpec, space: SearchSpace, config: SearchConfig, *,
                   model_sha: str, data_fingerprint: str, namespace: str | None = None) -> dict[str, Any]:
    """Everything that determines a study's trials (and nothing that only sizes its budget).

    ``namespace`` (the service passes the job id) keeps the studies of two jobs with the same request
    apart in one shared database: without it they would drive the same studies, at the same time if both
    run. A resumed job keeps its id, so it still finds its own finished trials."""
    spec = base_spec.to_dict()
    for volatile in ("checkpoint", "dataset", "params", "trial_seed", "prune", "device", "record_ids", "tag"):
        spec.pop(volatile, None)
    sampler = {k: v for k, v in asdict(config).items() if k not in ("max_trials", "patience", "reruns")}
    identity = {"model_sha256": model_sha, "data": data_fingerprint, "task": key.task, "n": key.n, "seed": key.seed,
                "trial": spec, "space": space.to_dict(), "search": sampler}
    if namespace is not None:
        identity["namespace"] = namespace
    return identity


def study_name(key: StudyKey, identity: dict[str, Any]) -> str:
    """Deterministic Optuna study name: a readable prefix and a hash of :func:`study_identity`."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return f"mlac-audit:{key.task}:n{key.n}:s{key.seed}:{digest}"


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


class TrialExecutor(Protocol):
    """Runs a batch of trial specs (plain dicts) and returns their result dicts, in the same order.

    An executor may also have an ``int`` attribute ``concurrency`` (how many trials it runs at once);
    the runner then keeps enough studies in flight to fill it (see :func:`run_studies_lockstep`).
    """

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec (possibly in parallel); a failure is a result dict with ``ok=False``."""
        ...


class InProcessExecutor:
    """Runs trials one after the other in this process, sharing one :class:`WorkerContext`."""

    concurrency = 1

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


def default_storage_url(out_dir: Path) -> str:
    """The default storage of an audit folder: a SQLite file ``optuna.db`` in it."""
    return f"sqlite:///{(Path(out_dir) / 'optuna.db').resolve()}"


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """WAL journal and ``synchronous=NORMAL``: a commit no longer waits for an fsync (5x fewer seconds per
    trial on a busy disk); a crashed process still loses nothing that was committed."""
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened before the listener reconnect with it


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna storage for ``url``: None = in memory; any SQLAlchemy URL (``sqlite:///x.db``,
    ``postgresql://...``) or a path ending in ``.db``/``.sqlite`` = Optuna's RDB storage;
    ``journal:PATH`` or a ``.journal``/``.log`` path = a journal file (multi-process safe, no driver)."""
    if url is None or url == "memory":
        return None
    if url.endswith((".db", ".sqlite")) and "://" not in url:
        path = Path(url).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    if url.startswith("journal:") or url.endswith((".journal", ".log")):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" in url:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            storage = optuna.storages.RDBStorage(url)
        except Exception as exc:  # driver missing, bad URL, unreachable server: say which storage failed
            raise ConfigError(f"cannot open the Optuna storage {url!r}: {exc}") from exc
        if url.startswith("sqlite"):
            _fast_sqlite(storage)
        return storage
    raise ConfigError(f"unknown Optuna storage {url!r}: use a database URL (sqlite:///PATH), a path ending in .db, "
                      "or 'journal:PATH'")


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


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def check_study_version(study: optuna.Study) -> None:
    """Record the Optuna version on a new study; refuse to continue one written by another major version."""
    stored = study.user_attrs.get(VERSION_ATTR)
    if stored is None:
        if not study.get_trials(deepcopy=False):
            study.set_user_attr(VERSION_ATTR, optuna.__version__)
        return
    if _major(str(stored)) != _major(optuna.__version__):
        raise ConfigError(f"study {study.study_name} was written by Optuna {stored}; this is Optuna "
                          f"{optuna.__version__}, whose sampler would not continue the same sequence: resume it with "
                          f"Optuna {_major(str(stored))}.x, or start a new audit folder / storage")


class StudyDriver:
    """Runs one search end to end (see the module docstring).

    Phases: ``search`` (batches of ``config.parallelism`` TPE trials until the budget or patience ends
    it), ``reruns`` (one batch: the winner ``config.reruns`` times), ``done``. :meth:`run` drives it
    with its own executor; :func:`run_studies_lockstep` drives many drivers through one executor.
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
        on_trial: Callable[[dict[str, Any]], None] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.key, self.base_spec, self.space, self.config = key, base_spec, space, config
        self.executor, self.should_stop, self.on_trial = executor, should_stop, on_trial
        self.identity = study_identity(key, base_spec, space, config, model_sha=model_sha, data_fingerprint=data_fingerprint,
                                       namespace=namespace)
        self.study = optuna.create_study(study_name=study_name(key, self.identity), storage=storage,
                                         sampler=self._sampler(0), direction="maximize", load_if_exists=True)
        check_study_version(self.study)
        fresh = not self.study.get_trials(deepcopy=False)
        if fresh:
            self.study.set_user_attr(SAMPLER_ATTR, config.sampler_settings())
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
        if on_trial is not None:
            self._replay()

    def _replay(self) -> None:
        """Announce the trials a previous run already finished (``replayed``: True), so that a job store that
        lost their records in a crash rebuilds them from the Optuna storage (records are written once)."""
        assert self.on_trial is not None
        for t in sorted(_finished(self.study), key=lambda t: t.number):
            if t.state == TrialState.FAIL:
                self.on_trial({"ok": False, "trial": t.number, "replayed": True})
            else:
                value = t.value if t.state == TrialState.COMPLETE else max((v for v in t.intermediate_values.values()), default=None)
                self.on_trial({"ok": True, "trial": t.number, "value": value, "pruned": t.state == TrialState.PRUNED,
                               "replayed": True})

    @property
    def done(self) -> bool:
        """Whether the search and the reruns are finished."""
        return self.phase == "done"

    def _spec(self, params: AttackParams, trial_seed: int, prune: PruneRule | None) -> dict[str, Any]:
        return replace(
            self.base_spec, params=params.to_dict(), trial_seed=trial_seed,
            prune=prune.to_dict() if prune is not None else None,
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
            return [self._spec(params, derived_seed("rerun", self.key.seed, self.key.task, self.key.n, i), None)
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

    def deliver(self, results: Sequence[dict[str, Any]]) -> None:
        """Results of the batch :meth:`next_specs` returned last, in the same order."""
        self.executed_now += len(results)
        if self.phase == "search":
            for (trial, _), result in zip(self._asked, results, strict=True):
                self._tell(trial, result)
            self._asked = []
        elif self.phase == "reruns":
            assert self._best is not None  # set when the reruns were asked for
            failed = [r for r in results if not r.get("ok")]
            if failed:
                raise SearchError(f"a rerun of the best configuration of {self.study.study_name} failed:\n"
                                  f"{failed[0].get('error')}")
            keep = [{k: r[k] for k in RERUN_KEYS if k in r} for r in results]
            self.study.set_user_attr("reruns", {"trial": self._best.number, "results": keep})
            self._reruns, self.phase = keep, "done"

    def _tell(self, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """Record ``result`` (the parameters were stored when the trial was asked)."""
        if not result.get("ok"):
            trial.set_user_attr("error", str(result.get("error", "unknown error"))[-8000:])
            self.study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d of %s failed: %s", trial.number, self.study.study_name, str(result.get("error"))[-300:])
            if self.on_trial:
                self.on_trial({"ok": False, "trial": trial.number})
            return
        for step, acc in result["selection_curve"]:
            trial.report(float(acc), int(step))
        trial.set_user_attr("outcome", {k: result[k] for k in OUTCOME_KEYS if k in result})
        placement = {k: result[k] for k in PLACEMENT_KEYS if result.get(k) is not None}
        if placement:  # where an executor ran the trial (e.g. a Ray node id and worker pid)
            trial.set_user_attr("placement", placement)
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

    def _stored_reruns(self, best: FrozenTrial) -> list[dict[str, Any]] | None:
        stored = self.study.user_attrs.get("reruns")
        if isinstance(stored, dict) and stored.get("trial") == best.number and len(stored.get("results", [])) >= self.config.reruns:
            return list(stored["results"][: self.config.reruns])
        return None

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


def run_studies_lockstep(
    drivers: Sequence[StudyDriver],
    executor: TrialExecutor,
    *,
    width: int = 1,
    should_stop: ShouldStop | None = None,
    on_done: Callable[[int, StudyResult], None] | None = None,
) -> list[StudyResult]:
    """Run every driver to the end, ``width`` studies at a time, their batches sent to ``executor`` together.

    Each driver sees exactly the asks and tells it would see alone, so results do not depend on
    ``width`` or on the executor. ``on_done(index, result)`` is called as each study finishes.
    """
    if width < 1:
        raise ConfigError(f"width must be at least 1, got {width}")
    results: dict[int, StudyResult] = {}
    waiting = list(range(len(drivers)))
    active: list[int] = []
    while waiting or active:
        while waiting and len(active) < width:
            active.append(waiting.pop(0))
        if should_stop is not None and should_stop():
            raise StoppedError(f"audit stopped with {len(results)} of {len(drivers)} searches finished; "
                               "run again with the same storage to resume")
        batches: list[tuple[int, list[dict[str, Any]]]] = []
        for i in list(active):
            specs = drivers[i].next_specs()
            if specs:
                batches.append((i, specs))
            else:  # finished without needing another batch (reruns reused from the storage)
                active.remove(i)
                results[i] = drivers[i].result()
                if on_done:
                    on_done(i, results[i])
        if not batches:
            continue
        flat = [spec for _, specs in batches for spec in specs]
        out = executor.map(flat)
        if len(out) != len(flat):
            raise SearchError(f"the executor returned {len(out)} results for {len(flat)} trial specs")
        start = 0
        for i, specs in batches:
            drivers[i].deliver(out[start : start + len(specs)])
            start += len(specs)
            if drivers[i].done:
                active.remove(i)
                results[i] = drivers[i].result()
                if on_done:
                    on_done(i, results[i])
    return [results[i] for i in range(len(drivers))]
