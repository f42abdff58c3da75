"""The cost estimate: an upper bound on what a search really runs, exact when patience never fires."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest

from mlac.audit.cost import audit_cost, censor_cost, job_cost, max_steps
from mlac.audit.presets import build_request
from mlac.audit.protocol import AuditRequest, expand, plan_counts
from mlac.audit.runner import PreparedAudit, run_studies
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.space import SearchConfig, SearchSpace, reference_grid
from mlac.audit.trial import WorkerContext
from mlac.censor.config import MLACConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace(lr_low=1e-4, lr_high=3e-2, steps_min=20, steps_max=45, steps_step=20, batch_sizes=(12, 24),
                    kinds=("probe", "full"))


class Scripted:
    """A trial executor that trains nothing: it answers each spec at once and counts runs and steps.

    ``improving``: every run scores better than the one before (patience never fires); else all score the same.
    """

    concurrency = 3

    def __init__(self, improving: bool) -> None:
        self.improving = improving
        self.runs = 0
        self.steps = 0
        self._score = itertools.count()

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            steps = int(spec["params"]["steps"])
            self.runs += 1
            self.steps += steps
            acc = 0.5 + 1e-4 * next(self._score) if self.improving else 0.5
            out.append({"ok": True, "selection_curve": [[steps, acc]], "best_selection_accuracy": acc, "pruned": False,
                        "report_accuracy": acc, "wall_s": 0.0, "flops": 0.0, "steps_run": steps, "best_step": steps})
        return out


def _request(search: SearchConfig, space: SearchSpace = SPACE, **kw: Any) -> AuditRequest:
    values: dict[str, Any] = {"dataset": "unused.parquet", "models": ("/ckpt/model-a",), "base": "tiny",
                              "baselines": ("random",), "sizes": (20,), "seeds": (0, 1), "space": space,
                              "search": search}
    values.update(kw)
    return AuditRequest(**values)


def _run(request: AuditRequest, executor: Any) -> None:
    checkpoints = {"model-a": "/ckpt/model-a", "random": "/ckpt/random"}
    prepared = PreparedAudit(request=request, task=None, checkpoints=checkpoints,  # type: ignore[arg-type]
                             shas={k: f"sha-{k}" for k in checkpoints}, dataset_fingerprint="fp", split_fingerprints={},
                             audit_id="test", keys=expand(request, checkpoints))
    run_studies(prepared, "memory", executor, lambda event: None, None)


def test_the_bound_is_exact_for_a_grid_started_search_without_patience() -> None:
    """8 studies, each the 8-run reference grid (its budget) plus 2 reruns: exactly the estimate, runs and steps."""
    grid = reference_grid(SPACE)
    assert len(grid) == 8 and {p.steps for p in grid} == {max_steps(SPACE)} == {40}
    request = _request(SearchConfig(max_trials=8, patience=8, reruns=2, grid_start=True))
    cost = audit_cost(request)
    executor = Scripted(improving=False)
    _run(request, executor)
    assert cost.studies == 8  # (model-a, random) x 2 tasks x 1 size x 2 seeds
    assert executor.runs == cost.trial_runs == 8 * (8 + 2)
    assert executor.steps == cost.attack_steps == cost.trial_runs * 40


def test_the_grid_is_inside_max_trials_not_added_to_it() -> None:
    """A budget smaller than the grid stops inside the grid: the grid is never run on top of max_trials."""
    request = _request(SearchConfig(max_trials=3, patience=50, reruns=1, grid_start=True))
    executor = Scripted(improving=True)
    _run(request, executor)
    assert executor.runs == audit_cost(request).trial_runs == 8 * (3 + 1)


def test_the_bound_holds_and_is_tight_for_tpe_when_every_trial_improves() -> None:
    request = _request(SearchConfig(max_trials=6, patience=2, reruns=3, tpe_startup_trials=2, parallelism=2))
    executor = Scripted(improving=True)
    _run(request, executor)
    cost = audit_cost(request)
    assert executor.runs == cost.trial_runs
    assert executor.steps <= cost.attack_steps


def test_patience_only_lowers_the_count() -> None:
    request = _request(SearchConfig(max_trials=12, patience=2, reruns=2, tpe_startup_trials=2))
    executor = Scripted(improving=False)
    _run(request, executor)
    cost = audit_cost(request)
    assert executor.runs < cost.trial_runs
    assert executor.steps <= cost.attack_steps


def test_the_bound_holds_for_a_real_tiny_search(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    """Real trials (tiny BERT, probes): what the in-process executor runs never exceeds the estimate."""
    space = SearchSpace(lr_low=1e-3, lr_high=3e-2, steps_min=10, steps_max=20, steps_step=10, batch_sizes=(12,),
                        kinds=("probe",))
    request = AuditRequest(dataset=str(audit_dataset), models=(str(tiny_checkpoint),), tasks=("harmful",), sizes=(20,),
                           seeds=(0,), space=space, selection_max=60, report_max=60,
                           search=SearchConfig(max_trials=5, patience=5, reruns=1, eval_every=10, grid_start=True))
    executor = InProcessExecutor(WorkerContext())
    label = Path(tiny_checkpoint).resolve().name
    checkpoints = {label: str(tiny_checkpoint)}
    prepared = PreparedAudit(request=request, task=None, checkpoints=checkpoints,  # type: ignore[arg-type]
                             shas={label: "sha"}, dataset_fingerprint="fp", split_fingerprints={}, audit_id="real",
                             keys=expand(request, checkpoints))
    run_studies(prepared, "memory", executor, lambda event: None, None)
    cost = audit_cost(request)
    assert 0 < executor.executed <= cost.trial_runs == 6


def test_presets_and_the_issue_job() -> None:
    """paper with every baseline is ~16k runs; the 2.8M-run job of the issue is the maxima the API allows."""
    def request(preset: str, **kw: Any) -> AuditRequest:
        return build_request(preset, dataset="d", models=("/m/a",), base="tiny", **kw)

    assert audit_cost(request("smoke", baselines=("random",))).trial_runs == 2 * 2 * 2 * 2 * (4 + 2)
    paper = request("paper", baselines=("random", "base", "beneficial_tuned", "ac"))
    assert audit_cost(paper).trial_runs == 5 * 2 * 4 * 6 * (50 + 15) == 15_600
    assert audit_cost(paper).trial_runs == plan_counts(paper)["max_trial_runs"]
    assert audit_cost(paper).attack_steps == 15_600 * 1000
    assert audit_cost(paper).baseline_steps == 300 + 200 + 200
    huge = paper.replace(sizes=tuple(range(1, 17)), seeds=tuple(range(32)),
                         search=SearchConfig(max_trials=500, reruns=50, prune=False, grid_start=True))
    assert audit_cost(huge).trial_runs == 5 * 2 * 16 * 32 * 550 == 2_816_000
    assert audit_cost(paper, extra_models=1).models == 6  # censor_then_audit adds the censored model


def test_censor_cost_and_totals() -> None:
    censor = censor_cost(MLACConfig(outer_steps=150, inner_steps=4))
    assert (censor.outer_steps, censor.inner_steps, censor.inner_updates) == (150, 4, 600)
    audit = audit_cost(_request(SearchConfig(max_trials=2, reruns=1)))
    total = job_cost(audit, censor)
    assert (total.trial_runs, total.censor_steps) == (audit.trial_runs, 600)
    assert job_cost(None, censor).trial_runs == 0
    assert total.to_dict()["audit"]["studies"] == audit.studies


@pytest.mark.parametrize("steps", [(100, 1000, 100), (20, 45, 20), (7, 7, 3)])
def test_max_steps_is_the_top_of_the_steps_grid(steps: tuple[int, int, int]) -> None:
    space = SearchSpace(steps_min=steps[0], steps_max=steps[1], steps_step=steps[2])
    assert max_steps(space) == max(range(steps[0], steps[1] + 1, steps[2]))
