"""How much best accuracy the median pruning rule costs on late-starting learning curves (a defended model's
shape), per warm-up setting, against the same search unpruned.

Uses the synthetic objective of ``tests/unit/audit/test_pruning_bias.py`` through the real StudyDriver (TPE,
the prune rule every spec carries, patience). Deterministic: no torch, the same numbers on every machine.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pruning_bias.py
"""

from __future__ import annotations

import statistics
from unittest import mock

import optuna

import mlac.audit.study as study
from mlac.audit.space import SearchConfig
from tests.unit.audit.test_pruning_bias import BUDGET, SEEDS, best_found, counting_pruned_since_best


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    unpruned = {s: best_found(SearchConfig(**BUDGET, prune=False), s) for s in SEEDS}
    print(f"unpruned: mean best selection accuracy {statistics.mean(unpruned.values()):.4f} over {len(SEEDS)} seeds\n")
    print("| warm-up fraction | min reference | pruned trials count toward patience | mean loss vs unpruned | worst seed |")
    print("| --- | --- | --- | --- | --- |")
    for counted in (True, False):
        for fraction in (0.0, 0.3, 0.5, 0.7):
            for min_ref in (3, 5):
                cfg = SearchConfig(**BUDGET, prune_warmup_fraction=fraction, prune_min_reference=min_ref)
                with mock.patch.object(study, "_since_best", counting_pruned_since_best) if counted else mock.MagicMock():
                    losses = [unpruned[s] - best_found(cfg, s) for s in SEEDS]
                print(f"| {fraction} | {min_ref} | {'yes' if counted else 'no'} | {statistics.mean(losses):+.4f} | "
                      f"{max(losses):+.4f} |")


if __name__ == "__main__":
    main()
