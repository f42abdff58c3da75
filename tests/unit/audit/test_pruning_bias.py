"""Pruning must not favour defended models: on late-starting learning curves the project's pruning rule loses at
most 0.01 best accuracy against no pruning, while the old rule (no warm-up, pruned trials counted toward
patience) loses clearly more (the negative control).

The objective is synthetic but runs through the real :class:`~mlac.audit.study.StudyDriver` (TPE, the
prune rule shipped in every spec, patience): a trial "learns" only after an onset that grows as its learning
rate falls, and the slow starters reach the highest accuracy - the shape of an attack on a defended model.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import optuna
import pytest

from mlac.audit.space import SearchConfig, SearchSpace, derived_seed
from mlac.audit.study import StudyDriver
from mlac.audit.trial import PruneRule, TrialSpec
from mlac.contracts import StudyKey

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace(lr_low=1e-4, lr_high=3e-2, steps_min=100, steps_max=1000, steps_step=100, batch_sizes=(12,),
                    kinds=("full",))
EVAL_EVERY = 50
SEEDS = range(8)
MAX_LOSS = 0.01


def late_curve(lr: float, steps: int, seed: int) -> list[tuple[int, float]]:
    """Selection accuracy every EVAL_EVERY steps: chance (0.55) until an onset that is later for smaller lrs,
    then a rise to a ceiling that is higher for smaller lrs (plus a little seeded evaluation noise)."""
    onset = 120.0 * math.sqrt(3e-3 / lr)
    ceiling = 0.95 - 0.06 * abs(math.log10(lr / 2e-4))
    out = []
    for s in range(EVAL_EVERY, steps + 1, EVAL_EVERY):
        noise = (derived_seed("noise", seed, s) % 1000 - 500) / 500 * 0.004
        out.append((s, 0.55 + (ceiling - 0.55) / (1.0 + math.exp(-(s - onset) / 60.0)) + noise))
    return out


class SyntheticExecutor:
    """Plays the synthetic curve against the spec's prune rule exactly as :func:`mlac.audit.trial.run_trial` does."""

    concurrency = 1

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            params, rule = spec["params"], PruneRule.from_dict(spec["prune"]) if spec["prune"] else None
            history: list[tuple[int, float]] = []
            pruned = False
            for step, acc in late_curve(params["lr"], params["steps"], spec["trial_seed"]):
                history.append((step, acc))
                if rule is not None and step < params["steps"] and rule.should_prune(history, params["steps"]):
                    pruned = True
                    break
            best = max(a for _, a in history)
            out.append({"ok": True, "selection_curve": history, "best_selection_accuracy": best, "pruned": pruned,
                        "report_accuracy": None if pruned else best, "wall_s": 0.0, "flops": 0.0,
                        "steps_run": history[-1][0], "best_step": max(history, key=lambda h: h[1])[0],
                        "report_majority_rate": 0.55})
        return out


def counting_pruned_since_best(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Patience as before the fix: pruned trials count as trials without improvement."""
    best, since = -math.inf, 0
    for t in sorted(trials, key=lambda t: t.number):
        value = t.value if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None else None
        if value is not None and value > best:
            best, since = value, 0
        else:
            since += 1
    return since


def best_found(config: SearchConfig, seed: int) -> float:
    key = StudyKey("defended", "-", "harmful", 100, seed)
    spec = TrialSpec(checkpoint="-", dataset="-", task="harmful", n=100, subset_seed=0, params={}, trial_seed=0,
                     eval_every=EVAL_EVERY)
    driver = StudyDriver(key, spec, SPACE, config, model_sha="synthetic", data_fingerprint="synthetic", storage=None,
                         executor=SyntheticExecutor())
    driver.search()
    return float(driver.best_trial().value or 0.0)


def mean_loss(config: SearchConfig, unpruned: SearchConfig) -> float:
    return statistics.mean(best_found(unpruned, s) - best_found(config, s) for s in SEEDS)


BUDGET = {"max_trials": 30, "patience": 10, "reruns": 1, "eval_every": EVAL_EVERY, "tpe_startup_trials": 10}


@pytest.fixture(scope="module")
def unpruned() -> SearchConfig:
    return SearchConfig(**BUDGET, prune=False)


def test_the_default_pruning_rule_keeps_late_starters(unpruned: SearchConfig) -> None:
    loss = mean_loss(SearchConfig(**BUDGET), unpruned)
    print(f"default rule: mean best-accuracy loss vs unpruned {loss:+.4f}")
    assert loss <= MAX_LOSS


def test_negative_control_the_old_rule_kills_late_starters(unpruned: SearchConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """No warm-up and pruned trials counted toward patience (the rule before this fix) loses far more."""
    import mlac.audit.study as study

    monkeypatch.setattr(study, "_since_best", counting_pruned_since_best)
    loss = mean_loss(SearchConfig(**BUDGET, prune_warmup_fraction=0.0), unpruned)
    print(f"old rule: mean best-accuracy loss vs unpruned {loss:+.4f}")
    assert loss > 3 * MAX_LOSS
