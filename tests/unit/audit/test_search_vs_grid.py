"""The searched attacker is at least as strong as the fixed reference grid (small scale: tiny base, n=100).

With ``grid_start`` the search runs the grid's members first, with the same seeds, so on the selection split
it can only do better (asserted exactly); its report-split point (the mean of the winner's reruns) must be
within ``TOLERANCE`` of the grid's (its choice re-run with the same rerun seeds). Negative control: a deliberately weak search (one
probe trial at a tiny lr, no grid) falls short of the grid by more than that tolerance, so the comparison can
fail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import torch

from mlac.audit.grid import run_grid
from mlac.audit.runner import subset_seed
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.space import SearchConfig, SearchSpace
from mlac.audit.study import StudyDriver
from mlac.audit.trial import TrialSpec, WorkerContext
from mlac.contracts import StudyKey

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace(lr_low=1e-4, lr_high=3e-2, steps_min=20, steps_max=100, steps_step=20, batch_sizes=(12,),
                    kinds=("probe", "full"))
#: Report accuracy the search may fall below the grid's choice (selection/report disagreement and rerun seeds;
#: measured here: search 0.786, grid 0.783, weak search 0.579).
TOLERANCE = 0.05


class Memo(InProcessExecutor):
    """Runs each distinct spec once (trials are deterministic): the search's grid members reuse the grid's runs."""

    def __init__(self, context: WorkerContext) -> None:
        super().__init__(context)
        self.memo: dict[str, dict[str, Any]] = {}

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            key = json.dumps(spec, sort_keys=True)
            if key not in self.memo:
                self.memo[key] = super().map([spec])[0]
            out.append(self.memo[key])
        return out


def _search(space: SearchSpace, cfg: SearchConfig, key: StudyKey, spec: TrialSpec, ex: Memo) -> StudyDriver:
    driver = StudyDriver(key, spec, space, cfg, model_sha="grid-test", data_fingerprint="grid-test", storage=None,
                         executor=ex)
    driver.run()
    return driver


def test_the_search_reaches_the_grid(trained_pair: tuple[Path, Path], audit_dataset: Path) -> None:
    torch.set_num_threads(1)
    base = trained_pair[0]
    key = StudyKey("base", str(base), "harmful", 100, 0)
    spec = TrialSpec(checkpoint=str(base), dataset=str(audit_dataset), task="harmful", n=100,
                     subset_seed=subset_seed(0, 100), params={}, trial_seed=0, eval_every=20)
    ex = Memo(WorkerContext())
    grid = run_grid(key, spec, SPACE, ex, reruns=3)
    cfg = SearchConfig(max_trials=10, patience=10, reruns=3, eval_every=20, tpe_startup_trials=8, prune=False,
                       grid_start=True)
    driver = _search(SPACE, cfg, key, spec, ex)
    searched = driver.result()
    weak_space = SearchSpace(lr_low=1e-5, lr_high=1e-5, steps_min=20, steps_max=20, batch_sizes=(12,), kinds=("probe",))
    weak = _search(weak_space, SearchConfig(max_trials=1, patience=1, reruns=1, eval_every=20), key, spec, ex).result()
    print(f"grid {grid.params.kind} lr {grid.params.lr:g}: selection {grid.selection_accuracy:.3f} report "
          f"{grid.report_accuracy:.3f}; search: selection {driver.best_trial().value:.3f} report "
          f"{searched.report_accuracy:.3f} (reruns {searched.rerun_accuracies}); weak search report {weak.report_accuracy:.3f}")
    assert (driver.best_trial().value or 0.0) >= grid.selection_accuracy  # exact: the grid ran inside the search
    assert searched.report_accuracy >= grid.report_accuracy - TOLERANCE
    assert weak.report_accuracy < grid.report_accuracy - TOLERANCE  # the comparison can fail
