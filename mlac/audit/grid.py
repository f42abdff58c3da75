"""The fixed reference attacker: the grid every searched attacker must match (PROTOCOL.md, "What makes a
verdict trustworthy").

:func:`run_grid` runs :func:`~mlac.audit.space.reference_grid` for one (model, task, n, seed) through any
:class:`~mlac.audit.scheduling.TrialExecutor`, chooses the configuration with the best selection accuracy and
reports its report-split accuracy the way a search reports its point: the mean over ``reruns`` runs of the
chosen configuration with the search's rerun seeds (the chosen run's own score is kept too; it is
optimistic, being the best of the grid on a selection split that correlates with the report split). Grid
member ``i`` gets the seed trial ``i`` of a search gets, so a search started with the grid (``grid_start``)
runs exactly these trials first: on the selection split it can only do better.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlac.attacks import AttackParams
from mlac.audit.scheduling import TrialExecutor
from mlac.audit.space import SearchSpace, derived_seed, reference_grid
from mlac.audit.study import SearchError
from mlac.audit.trial import TrialSpec
from mlac.contracts import StudyKey


@dataclass(frozen=True)
class GridResult:
    """The grid's choice for one (model, task, n, seed): its parameters, selection and report accuracy."""

    key: StudyKey
    params: AttackParams
    selection_accuracy: float
    report_accuracy: float
    chosen_run_report_accuracy: float
    rerun_accuracies: list[float]
    best_step: int
    runs: int


def grid_specs(key: StudyKey, base_spec: TrialSpec, space: SearchSpace) -> list[TrialSpec]:
    """One spec per grid member, seeded as the first trials of a search of ``key`` are."""
    return [replace(base_spec, params=p.to_dict(), prune=None,
                    trial_seed=derived_seed("trial", key.seed, key.task, key.n, i))
            for i, p in enumerate(reference_grid(space))]


def run_grid(key: StudyKey, base_spec: TrialSpec, space: SearchSpace, executor: TrialExecutor,
             reruns: int = 1) -> GridResult:
    """Run the grid, keep the member best on the selection split (ties: the earlier member) and re-run it
    ``reruns`` times with the seeds a search's reruns get."""
    specs = grid_specs(key, base_spec, space)
    results = executor.map([s.to_dict() for s in specs])
    done = [(i, r) for i, r in enumerate(results) if r.get("ok")]
    if not done:
        raise SearchError(f"every grid run of {key.label()} failed; first error:\n{results[0].get('error') if results else ''}")
    i, best = max(done, key=lambda ir: (float(ir[1]["best_selection_accuracy"]), -ir[0]))
    again = executor.map([replace(specs[i], trial_seed=derived_seed("rerun", key.seed, key.task, key.n, r)).to_dict()
                          for r in range(reruns)])
    failed = [r for r in again if not r.get("ok")]
    if failed:
        raise SearchError(f"a rerun of the grid's choice for {key.label()} failed:\n{failed[0].get('error')}")
    accs = [float(r["report_accuracy"]) for r in again]
    return GridResult(key=key, params=AttackParams.from_dict(specs[i].params),
                      selection_accuracy=float(best["best_selection_accuracy"]), report_accuracy=sum(accs) / len(accs),
                      chosen_run_report_accuracy=float(best["report_accuracy"]), rerun_accuracies=accs,
                      best_step=int(best["best_step"]), runs=len(specs) + reruns)
