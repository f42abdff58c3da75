"""Run a whole audit: validate, build baselines, run every search, assemble curves, write the report.

:func:`run_audit` is the one entry point every layer uses (CLI, Ray driver, service). Trials go through
the executor it is given (in-process by default); Optuna studies live in ``<out>/optuna.db`` (SQLite)
unless a storage URL is passed, so an interrupted audit run again into the same folder resumes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlac.audit.baselines import build_baselines
from mlac.audit.protocol import AuditRequest, audit_id, expand, model_labels, plan_counts
from mlac.audit.result_schema import AuditResult
from mlac.audit.samples import remove_samples, write_samples
from mlac.audit.scheduling import InProcessExecutor, TrialExecutor, run_studies_lockstep
from mlac.audit.space import derived_seed, reference_grid
from mlac.audit.storage import default_storage_url, open_storage
from mlac.audit.study import OnTrial, StudyDriver, StudyResult
from mlac.audit.trial import TrialSpec
from mlac.contracts import ProgressEvent, StudyKey
from mlac.data import dataset_fingerprint, load_saved_dataset, make_splits
from mlac.models import validate_checkpoint_dir
from mlac.progress_eta import AuditEta
from mlac.tasks import TaskSpec

log = logging.getLogger(__name__)

#: Receives each :class:`~mlac.contracts.ProgressEvent` in its plain form (it crosses processes from here on).
Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]
STUDIES_FILE = "studies.json"


@dataclass(frozen=True)
class PreparedAudit:
    """Everything known once inputs are validated and baselines exist."""

    request: AuditRequest
    task: TaskSpec
    checkpoints: dict[str, str]
    shas: dict[str, str]
    dataset_fingerprint: str
    split_fingerprints: dict[str, str]
    audit_id: str
    keys: list[StudyKey]


def subset_seed(seed: int, n: int) -> int:
    """Seed of the attacker's n-example subset: shared by every model and task (paired comparison)."""
    return derived_seed("subset", seed, n)


def prepare(request: AuditRequest, out_dir: Path, progress: Progress) -> PreparedAudit:
    """Validate the request against its data and build (or reuse) the baselines."""
    request.validate()
    progress(ProgressEvent(stage="prepare").to_dict())
    ds, task = load_saved_dataset(request.dataset)
    for t in request.tasks:
        task.num_labels(t)
    splits = make_splits(ds, request.split_seed)
    request.check_pool(len(splits.attack_pool))
    progress(ProgressEvent(stage="baselines").to_dict())
    built = build_baselines(request, splits.train, splits.fingerprints["train"], task, out_dir, progress)
    checkpoints = {label: (path if path is not None else built[label]) for label, path in model_labels(request)}
    shas = {label: validate_checkpoint_dir(path, check_values=False).sha256 for label, path in checkpoints.items()}
    fingerprint = dataset_fingerprint(ds)
    return PreparedAudit(
        request=request, task=task, checkpoints=checkpoints, shas=shas, dataset_fingerprint=fingerprint,
        split_fingerprints=dict(splits.fingerprints), audit_id=audit_id(request, shas, fingerprint),
        keys=expand(request, checkpoints),
    )


def base_spec(request: AuditRequest, key: StudyKey) -> TrialSpec:
    """The trial spec of ``key`` before the search fills in params and seeds."""
    return TrialSpec(
        checkpoint=str(Path(key.checkpoint).resolve()), dataset=str(Path(request.dataset).resolve()), task=key.task,
        n=key.n, subset_seed=subset_seed(key.seed, key.n), params={}, trial_seed=0, split_seed=request.split_seed,
        eval_every=request.search.eval_every, max_length=request.max_length, selection_max=request.selection_max,
        report_max=request.report_max, device=request.device,
        tag=key.tag(),
    )


def executor_width(executor: TrialExecutor, parallelism: int) -> int:
    """How many studies to keep in flight so that ``executor`` has enough trials to run at once."""
    concurrency = getattr(executor, "concurrency", None) or getattr(executor, "parallelism", None) or 1
    return max(1, math.ceil(int(concurrency) / max(1, parallelism)))


def run_studies(
    prepared: PreparedAudit,
    storage_url: str,
    executor: TrialExecutor,
    progress: Progress,
    should_stop: ShouldStop | None,
    study_namespace: str | None = None,
) -> list[StudyResult]:
    """Run every search of the audit (several at once when the executor is parallel), with progress events.

    The results do not depend on how many run at once (see :func:`run_studies_lockstep`).
    ``study_namespace`` goes into every study's name (see :func:`~mlac.audit.study.study_identity`).
    """
    request = prepared.request
    storage = open_storage(storage_url)
    counts = plan_counts(request)
    total = len(prepared.keys)
    state = {"trials_done": 0, "studies_done": 0}
    best: dict[int, float] = {}

    grid = len(reference_grid(request.space)) if request.search.grid_start else 0
    eta = AuditEta(total, request.search.max_trials, request.search.reruns, patience=request.search.patience,
                   grid_trials=min(grid, request.search.max_trials))

    def emit(key: StudyKey, index: int, event: ProgressEvent) -> None:
        full = replace(event, stage="search", study=index, studies_done=state["studies_done"], studies_total=total,
                       trials_done=state["trials_done"], trials_total=counts["max_trials"], model=key.model,
                       task=key.task, n=key.n, seed=key.seed)
        now = time.monotonic()
        eta.observe(now, full.to_dict())
        left = eta.remaining(now)  # the one audit ETA: the CLI, the job store and the web view show this
        progress(replace(full, eta_s=round(left, 1) if left is not None else None).to_dict())

    def on_trial(index: int) -> OnTrial:
        key = prepared.keys[index]

        def hook(event: ProgressEvent) -> None:
            state["trials_done"] += 1
            if event.ok and not event.pruned and event.value is not None:
                best[index] = max(best.get(index, 0.0), float(event.value))
            emit(key, index, replace(event, best_so_far=best.get(index)))

        return hook

    def on_done(index: int, result: StudyResult) -> None:
        state["studies_done"] += 1
        emit(result.key, index, ProgressEvent(stage="search", point=result.report_accuracy,
                                              best_so_far=result.report_accuracy))

    drivers = [
        StudyDriver(key, base_spec(request, key), request.space, request.search, model_sha=prepared.shas[key.model],
                    data_fingerprint=prepared.dataset_fingerprint, storage=storage, on_trial=on_trial(index),
                    namespace=study_namespace, log_samples=request.log_samples)
        for index, key in enumerate(prepared.keys)
    ]
    return run_studies_lockstep(drivers, executor, width=executor_width(executor, request.search.parallelism),
                                should_stop=should_stop, on_done=on_done)


def study_record(result: StudyResult) -> dict[str, Any]:
    """Plain form of one seed's point (what ``studies.json`` holds)."""
    return {
        **result.key.tag(), "report_accuracy": result.report_accuracy, "selection_accuracy": result.selection_accuracy,
        "rerun_accuracies": result.rerun_accuracies, "best_params": result.best_params,
        "trials_run": result.trials_run, "failed_trials": result.failed_trials,
        "attacker_wall_s": result.attacker_wall_s, "attacker_flops": result.attacker_flops,
        "trial_history": result.trial_history, "majority_rate": result.majority_rate,
    }


def execute_audit(
    request: AuditRequest,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    executor: TrialExecutor | None = None,
    storage_url: str | None = None,
    study_namespace: str | None = None,
) -> tuple[PreparedAudit, list[StudyResult]]:
    """Validate, build baselines and run every search; writes ``studies.json`` (one record per seed point) and, with
    the request's ``log_samples``, ``samples.csv`` and ``samples_summary.csv`` (:mod:`mlac.audit.samples`; without
    it, sample files a former run left in ``out_dir`` are removed: they would not describe this run)."""
    emit = progress or (lambda event: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(request, out, emit)
    results = run_studies(prepared, storage_url or default_storage_url(out),
                          executor if executor is not None else InProcessExecutor(), emit, should_stop, study_namespace)
    (out / STUDIES_FILE).write_text(json.dumps([study_record(r) for r in results], indent=2, sort_keys=True), encoding="utf-8")
    if request.log_samples:
        write_samples(request, results, out)
    else:
        for stale in remove_samples(out):
            log.info("removed %s: written by a former run with log_samples, not by this one", stale)
    return prepared, results


def run_audit(
    request: AuditRequest,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    executor: TrialExecutor | None = None,
    storage_url: str | None = None,
    study_namespace: str | None = None,
) -> AuditResult:
    """Run ``request`` into ``out_dir`` and write the report there; returns the :class:`AuditResult`.

    ``progress`` receives each :class:`~mlac.contracts.ProgressEvent` in plain form (:meth:`~ProgressEvent.to_dict`):
    ``stage`` (prepare, baselines, search, report, done) and, during the search, the study, studies/trials done
    and total, each finished trial and the best accuracy of the study so far (its point once it finished).
    ``should_stop`` is polled between trials; when it returns True a StoppedError is raised (run the
    same request into the same folder to resume). ``storage_url``: where the Optuna studies live (default:
    ``optuna.db`` in ``out_dir``); ``study_namespace``: set it when several audits share that storage (the
    service passes the job id) so that identical requests do not share studies.
    """
    emit = progress or (lambda event: None)
    started = time.monotonic()
    prepared, results = execute_audit(request, out_dir, progress=emit, should_stop=should_stop, executor=executor,
                                      storage_url=storage_url, study_namespace=study_namespace)
    emit(ProgressEvent(stage="report").to_dict())
    result = assemble_result(prepared, results, wall_s=time.monotonic() - started)
    from mlac.audit.report_html import write_report

    write_report(result, Path(out_dir))
    emit(ProgressEvent(stage="done", studies_done=len(results), studies_total=len(results)).to_dict())
    return result


def attacker_caveat(request: AuditRequest) -> str:
    """How strong the searched attacker is, in one sentence (a low harmful accuracy means only this much)."""
    space, search = request.space, request.search
    grid = reference_grid(space)
    strength = (f"every search started with the reference grid ({len(grid)} runs: kinds {', '.join(space.kinds)} x "
                f"lr {', '.join(f'{p.lr:g}' for p in grid[: len(grid) // len(space.kinds)])} at {grid[0].steps} steps)"
                if search.grid_start else "the search did not start with the reference grid")
    short = (f"; trials were capped at {space.steps_max} steps, below the reference grid's 1000: a stronger attacker "
             "may do better" if space.steps_max < 1000 else "")
    pruning = "pruning off" if not search.prune else f"median pruning after {search.prune_warmup_fraction:.0%} of a trial"
    return f"Attacker: {search.max_trials} trials at most per search, {strength}{short}; {pruning}."


def provenance(prepared: PreparedAudit) -> dict[str, Any]:
    """Where every number came from: checkpoints (path, sha256), data fingerprints, versions, seeds; when the
    result was assembled (UTC) and by which code (the package version, plus the git commit in a checkout)."""
    from datetime import UTC, datetime

    from mlac.models.provenance import code_version, package_versions

    request = prepared.request
    return {
        "audit_id": prepared.audit_id,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code_version": code_version(),
        "checkpoints": {label: {"path": str(Path(path).resolve()), "sha256": prepared.shas[label]}
                        for label, path in prepared.checkpoints.items()},
        "dataset": {"path": str(Path(request.dataset).resolve()), "fingerprint": prepared.dataset_fingerprint,
                    "splits": prepared.split_fingerprints, "split_seed": request.split_seed},
        "seeds": list(request.seeds),
        "subset_seeds": {str(n): {str(s): subset_seed(s, n) for s in request.seeds} for n in request.sizes},
        "package_versions": package_versions(),
        "search": {**request.search.sampler_settings(),
                   "reference_grid": [p.to_dict() for p in reference_grid(request.space)] if request.search.grid_start else None},
        "caveats": [
            "Accuracies are on the report split, which neither training nor the search saw; the search "
            "selected hyperparameters on the separate selection split.",
            f"Each seed's point is the mean of {request.search.reruns} re-runs of the best configuration.",
            attacker_caveat(request),
            "FLOP counts are estimates (6 x non-embedding parameters x tokens for a training step, 2 x for a "
            "forward pass); attention's quadratic term is ignored.",
        ],
    }


def assemble_result(prepared: PreparedAudit, results: list[StudyResult], *, wall_s: float) -> AuditResult:
    """Seed points -> curves -> :class:`AuditResult` (schema in ``result_schema``)."""
    from mlac.audit.curves import SeedPoint, build_curves

    points = [SeedPoint.from_dict(study_record(r)) for r in results]
    return AuditResult(request=prepared.request.to_dict(), curves=build_curves(points), seed_points=points,
                       provenance=provenance(prepared), timings={"wall_s": wall_s}, policy=prepared.request.verdict)
