"""The sizes and budgets of each scale of the v2 study; everything a scale changes lives here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlac.attacks import AttackParams
from mlac.audit.space import SearchConfig, SearchSpace
from mlac.censor import MLACConfig

SCALES = ("ci", "cpu", "gpu")

#: The AC baseline (:func:`mlac.censor.config.ac_config`) as overrides of the main recipe: K = 0, a learned
#: adversary head, bounded negative cross-entropy.
AC_OVERRIDES: dict[str, Any] = {"inner_steps": 0, "adv_loss": "neg_ce", "inner_lr_mode": "fixed",
                                "adversary_head": "learned", "adversary_objective": "game", "adversary_lr": 1e-3}

#: The strong preset's attacker space (mlac/audit/presets.py) with the linear probe as the only kind: on
#: cached features a probe trial costs milliseconds, so the search can afford every optimizer, schedule and
#: weight decay at every n and seed. Full fine-tuning and LoRA are checked separately (:attr:`V2Scale.checks`).
STRONG_PROBE_SPACE = SearchSpace(lr_low=1e-5, lr_high=3e-2, steps_min=100, steps_max=1000, steps_step=100,
                                 batch_sizes=(12, 24, 48), kinds=("probe",), optimizers=("adam", "adamw", "sgd"),
                                 schedules=("constant", "warmup_linear"), weight_decays=(0.0, 0.01))


@dataclass(frozen=True)
class V2Scale:
    """One scale of the v2 study."""

    name: str
    #: "minilm" (the offline pre-trained MiniLM-L6) or "supervised" (the tiny base trained on both labels).
    base_kind: str
    n_bios: int
    max_length: int
    #: The share of each gender's first names MLAC sees during censoring; the rest are never censored.
    seen_fraction: float
    #: The main MLAC recipe and its training seeds.
    mlac: MLACConfig
    mlac_seeds: tuple[int, ...]
    #: Ablations: label -> (MLACConfig overrides of the main recipe, training seeds).
    ablations: dict[str, tuple[dict[str, Any], tuple[int, ...]]]
    #: The main audit (both tasks, every model): the attacker's data sizes and seeds, space and budget.
    sizes: tuple[int, ...]
    attack_seeds: tuple[int, ...]
    space: SearchSpace
    search: SearchConfig
    #: The ablation audit (harmful task only) runs at these sizes.
    ablation_sizes: tuple[int, ...]
    selection_max: int
    report_max: int
    #: Fixed stronger attacks (full fine-tuning, LoRA) on base, random and the first MLAC seed:
    #: (name, params, sizes).
    checks: tuple[tuple[str, AttackParams, tuple[int, ...]], ...]
    check_seeds: tuple[int, ...]
    check_eval_every: int
    #: Steps of the bag-of-words logistic regression reference (learning from scratch on the attacker's rows).
    bow_steps: int = 300
    device: str = "cpu"
    notes: tuple[str, ...] = field(default_factory=tuple)


def _mlac(**overrides: Any) -> MLACConfig:
    base = MLACConfig(inner_steps=1, second_order=False, inner_lr=1e-3, inner_lr_mode="fixed", outer_lr=1e-4,
                      outer_steps=40, outer_batch_size=20, inner_batch_sizes=(24,), adv_loss="remap", w_adv=1.0,
                      val_every=20, checkpoint_every=20, max_length=64, device="cpu")
    return base.replace(**overrides)


def make_scale(name: str) -> V2Scale:
    """The scale called ``name`` (one of :data:`SCALES`)."""
    if name == "ci":
        return V2Scale(
            name="ci", base_kind="supervised", n_bios=1500, max_length=48, seen_fraction=0.5,
            mlac=_mlac(outer_lr=3e-4, outer_steps=20, val_every=10, checkpoint_every=10, max_length=48),
            mlac_seeds=(0,), ablations={"second_order": ({"second_order": True}, (0,))},
            sizes=(20, 100), attack_seeds=(0, 1),
            space=SearchSpace(lr_low=1e-3, lr_high=3e-2, steps_min=100, steps_max=200, steps_step=100,
                              batch_sizes=(24,), kinds=("probe",), optimizers=("adam", "sgd")),
            search=SearchConfig(max_trials=4, patience=4, reruns=2, eval_every=50, tpe_startup_trials=2,
                                prune=False, grid_start=True),
            ablation_sizes=(100,), selection_max=150, report_max=200,
            checks=(("full", AttackParams(kind="full", lr=3e-4, steps=20, batch_size=24), (100,)),),
            check_seeds=(0,), check_eval_every=10, bow_steps=100,
        )
    if name == "cpu":
        return V2Scale(
            name="cpu", base_kind="minilm", n_bios=6000, max_length=64, seen_fraction=0.5,
            mlac=_mlac(), mlac_seeds=(0, 1, 2),
            ablations={"second_order": ({"second_order": True}, (0, 1)),
                       "neg_ce": ({"adv_loss": "neg_ce"}, (0, 1)),
                       "ac_k0": (AC_OVERRIDES, (0, 1))},
            sizes=(20, 50, 100, 200, 500, 1000), attack_seeds=(0, 1, 2, 3, 4, 5),
            space=STRONG_PROBE_SPACE,
            search=SearchConfig(max_trials=12, patience=6, reruns=3, eval_every=50, tpe_startup_trials=6,
                                prune=False, grid_start=True),
            ablation_sizes=(100, 1000), selection_max=500, report_max=1000,
            checks=(("full", AttackParams(kind="full", optimizer="adamw", lr=5e-5, steps=100, batch_size=24,
                                          weight_decay=0.01), (100, 1000)),
                    ("lora", AttackParams(kind="lora", lr=1e-3, steps=100, batch_size=24), (1000,))),
            check_seeds=(0, 1, 2), check_eval_every=50,
        )
    if name == "gpu":
        return V2Scale(
            name="gpu", base_kind="minilm", n_bios=20000, max_length=64, seen_fraction=0.5,
            mlac=_mlac(inner_steps=4, second_order=True, outer_lr=1e-5, outer_steps=2000, val_every=200,
                       checkpoint_every=200, device="cuda"),
            mlac_seeds=(0, 1, 2),
            ablations={"K1_first_order": ({"inner_steps": 1, "second_order": False}, (0, 1)),
                       "first_order": ({"second_order": False}, (0, 1)),
                       "neg_ce": ({"adv_loss": "neg_ce"}, (0, 1)),
                       "ac_k0": (AC_OVERRIDES, (0, 1))},
            sizes=(20, 50, 100, 200, 500, 1000), attack_seeds=(0, 1, 2, 3, 4, 5),
            space=SearchSpace(lr_low=1e-5, lr_high=3e-2, steps_min=100, steps_max=1000, steps_step=100,
                              batch_sizes=(12, 24, 48), kinds=("probe", "full", "lora"),
                              optimizers=("adam", "adamw", "sgd"), schedules=("constant", "warmup_linear"),
                              weight_decays=(0.0, 0.01)),
            search=SearchConfig(max_trials=60, patience=15, reruns=5, eval_every=50, tpe_startup_trials=20,
                                prune=False, grid_start=True),
            ablation_sizes=(100, 1000), selection_max=500, report_max=1000,
            checks=(("full_long", AttackParams(kind="full", optimizer="adamw", lr=5e-5, steps=2000, batch_size=24,
                                               weight_decay=0.01), (100, 1000)),
                    ("lora_long", AttackParams(kind="lora", lr=1e-3, steps=2000, batch_size=24), (100, 1000))),
            check_seeds=(0, 1, 2, 3, 4, 5), check_eval_every=100, device="cuda",
        )
    raise ValueError(f"unknown scale {name!r}; choose from {SCALES}")
