"""Fixed attacks (no search) used by the ablations, the calibration and the strong-attacker experiment.

Two families, both the project's own routines:
- :func:`mlac.censor.finetune_attack` / :func:`mlac.censor.validation_attack`: the attack MLAC simulates
  (K steps at the inner lr from fresh heads), a linear probe, a short full fine-tune;
- :func:`mlac.attacks.run_attack_trial`: the audit's attacker (selection-split early stopping,
  report-split score, FLOP count), for LoRA, long and large-n attacks and the learning-rate grid.
"""

from __future__ import annotations

from typing import Any

from experiments.replication.setup import Study
from mlac.attacks import AttackData, AttackParams, run_attack_trial
from mlac.censor import finetune_attack, simulated_attack
from mlac.models import EncoderClassifier

SUITE_KEYS = ("simulated", "probe", "full", "beneficial_probe")


def suite_on(study: Study, model: EncoderClassifier, n: int, seed: int) -> dict[str, float]:
    """The four fixed attacks of one (model, n, seed); accuracy on the report split."""
    scale = study.scale
    atk = study.enc["attack_pool"].subset(study.attack_rows(n, seed))
    ev = study.enc["report"]
    nb = study.task.num_labels("beneficial")
    return {
        "simulated": simulated_attack(model, scale.mlac, atk, ev, repeats=8, seed=seed).accuracy,
        "probe": finetune_attack(model, atk, ev, steps=200, lr=1e-3, batch_size=24, freeze_trunk=True, seed=seed).accuracy,
        "full": finetune_attack(model, atk, ev, steps=scale.suite_full_steps, lr=1e-4, batch_size=24, seed=seed).accuracy,
        "beneficial_probe": finetune_attack(model, atk, ev, task="beneficial", num_labels=nb, steps=200, lr=1e-3,
                                            batch_size=24, freeze_trunk=True, seed=seed).accuracy,
    }


def suite(study: Study, label: str) -> dict[str, Any]:
    """Cached suite of checkpoint ``label`` over the scale's suite seeds: per-seed values per attack."""

    def run() -> dict[str, Any]:
        model = study.load(label).model
        rows = [suite_on(study, model, study.scale.suite_n, s) for s in study.scale.suite_seeds]
        return {k: [r[k] for r in rows] for k in SUITE_KEYS} | {"seeds": list(study.scale.suite_seeds)}

    return study.pieces.run(f"suite/{label}", run)


def attack_data(study: Study, n: int, seed: int) -> AttackData:
    """The audit attacker's view: n pool rows, the selection split and the report split."""
    pool = study.enc["attack_pool"]
    ids = tuple(str(i) for i in range(len(pool)))
    sel, rep = study.enc["selection"], study.enc["report"]
    return AttackData(pool, ids, tuple(study.attack_rows(n, seed)), sel, tuple(map(str, range(len(sel)))),
                      rep, tuple(map(str, range(len(rep)))))


def audit_attack(study: Study, model: EncoderClassifier, n: int, seed: int, params: AttackParams,
                 eval_every: int = 50, task: str = "harmful") -> dict[str, Any]:
    """One run of the audit's attacker with fixed hyperparameters (no search)."""
    out = run_attack_trial(model, attack_data(study, n, seed), task, study.task.num_labels(task), params, seed,
                           eval_every=eval_every)
    return {"report": out.report_accuracy, "selection_best": out.best_selection_accuracy, "best_step": out.best_step,
            "curve": out.selection_curve, "flops": out.flops, "wall_s": out.wall_s, "n": n, "seed": seed,
            "params": params.to_dict()}
