"""The three scales of the study: ``ci`` (inside the test suite), ``cpu`` (~1 h on 2 cores), ``gpu``.

Everything a scale changes lives here, so the experiment code reads the same at every scale. The
issue's reference values are noted where a scale departs from them (see docs/replication/v1_tiny_base.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlac.audit.space import SearchConfig, SearchSpace
from mlac.censor import MLACConfig

SCALES = ("ci", "cpu", "gpu")


@dataclass(frozen=True)
class Scale:
    """Sizes and budgets of one run of the study."""

    name: str
    #: Labelled synthetic bios (SynthConfig fields other than n_bios/seed).
    n_bios: int
    data_knobs: dict[str, Any]
    max_length: int
    #: Base model: "mlm" (tiny BERT, masked-LM pre-trained), "supervised" (make_base_model) or "minilm".
    base_kind: str
    corpus_bios: int
    mlm_steps: int
    mlm_batch: int
    mlm_lr: float
    supervised_steps: int
    #: The main MLAC recipe and its training seeds (experiment 1).
    mlac: MLACConfig
    mlac_seeds: tuple[int, ...]
    #: Outer steps at which the seed-0 run is evaluated (MLAC training-compute curve).
    compute_marks: tuple[int, ...]
    #: Ablations (experiments 2 and 3): name -> MLACConfig overrides of the main recipe.
    ablations: dict[str, dict[str, Any]]
    beneficial_steps: int
    #: Experiment 1: the audit engine's search.
    sizes: tuple[int, ...]
    attack_seeds: tuple[int, ...]
    space: SearchSpace
    search: SearchConfig
    beneficial_space: SearchSpace
    beneficial_search: SearchConfig
    selection_max: int
    report_max: int
    #: Fixed attack suite (ablations, calibration, strong attacks): n, seeds, steps.
    suite_n: int
    suite_seeds: tuple[int, ...]
    suite_full_steps: int
    #: Experiment 4: larger n, long attacks (5x), learning-rate grid one decade wider each side.
    large_sizes: tuple[int, ...]
    long_steps: int
    long_eval_every: int
    lr_grid: tuple[float, ...]
    lora_steps: int
    grid_steps: int
    #: Data-hardness calibration: generator variants (name -> knob overrides) and sizes.
    calibration_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration_sizes: tuple[int, ...] = (20, 100)
    calibration_seeds: int = 2
    #: Steps of the calibration's fixed attacks: (linear probe, full fine-tuning).
    calibration_steps: tuple[int, int] = (200, 100)
    device: str = "cpu"


#: Calibrated data: 1 to 2 body sentences, the name cue in 95% of bios (every first name of the
#: generator's pools, so each is rare among 200 examples), a noun cue in 15%, no job-title sentence.
DATA_KNOBS: dict[str, Any] = {
    "names_per_gender": 0,  # 0 = every name the generator has (filled in at run time)
    "min_sentences": 1, "max_sentences": 2, "specialty_rate": 0.0,
    "name_cue_rate": 0.95, "noun_cue_rate": 0.15,
}

#: The MLAC setting measured in benchmarks/RESULTS.md ("MLAC behaviour calibration").
MLAC_MAIN = MLACConfig(
    inner_steps=4, second_order=True, inner_lr=1e-3, outer_lr=3e-4, outer_steps=150, outer_batch_size=20,
    inner_batch_sizes=(24,), adv_loss="remap", w_adv=1.0, val_every=50, checkpoint_every=50, max_length=64,
    device="cpu",
)

ABLATIONS: dict[str, dict[str, Any]] = {
    "K0_remap": {"inner_steps": 0, "inner_lr_mode": "fixed"},
    "K1": {"inner_steps": 1},
    "K4_first_order": {"second_order": False},
    "K4_neg_ce": {"adv_loss": "neg_ce"},
}


def make_scale(name: str) -> Scale:
    """The scale called ``name`` (one of SCALES)."""
    if name == "ci":
        return Scale(
            name="ci", n_bios=2000, data_knobs=DATA_KNOBS, max_length=48, base_kind="supervised",
            corpus_bios=1000, mlm_steps=30, mlm_batch=32, mlm_lr=1e-3, supervised_steps=200,
            mlac=MLAC_MAIN.replace(outer_steps=50, val_every=25, checkpoint_every=25, max_length=48),
            mlac_seeds=(0,), compute_marks=(25,), ablations={}, beneficial_steps=50,
            sizes=(20, 100), attack_seeds=(0, 1),
            space=SearchSpace(lr_low=1e-3, lr_high=1e-2, steps_min=50, steps_max=50, batch_sizes=(24,),
                              kinds=("probe",)),
            search=SearchConfig(max_trials=2, patience=2, reruns=1, eval_every=25, tpe_startup_trials=2),
            beneficial_space=SearchSpace(lr_low=1e-3, lr_high=1e-2, steps_min=50, steps_max=50, batch_sizes=(24,),
                                         kinds=("probe",)),
            beneficial_search=SearchConfig(max_trials=2, patience=2, reruns=1, eval_every=25, tpe_startup_trials=2),
            selection_max=100, report_max=200, suite_n=100, suite_seeds=(0,), suite_full_steps=30,
            large_sizes=(150,), long_steps=100, long_eval_every=50, lr_grid=(1e-4, 1e-2), lora_steps=30, grid_steps=30,
            calibration_variants={"calibrated": {}}, calibration_sizes=(20, 100), calibration_seeds=1,
            calibration_steps=(60, 30),
        )
    if name == "cpu":
        return Scale(
            name="cpu", n_bios=6000, data_knobs=DATA_KNOBS, max_length=64, base_kind="mlm",
            corpus_bios=20000, mlm_steps=1200, mlm_batch=64, mlm_lr=1e-3, supervised_steps=300,
            mlac=MLAC_MAIN, mlac_seeds=(0, 1, 2), compute_marks=(50, 100),
            ablations={k: v for k, v in ABLATIONS.items() if k != "K0_remap"},
            beneficial_steps=150, sizes=(20, 50, 100, 200), attack_seeds=(0, 1, 2),
            space=SearchSpace(lr_low=1e-5, lr_high=1e-2, steps_min=50, steps_max=50,
                              batch_sizes=(24,), kinds=("probe", "full")),
            search=SearchConfig(max_trials=2, patience=2, reruns=1, eval_every=25, tpe_startup_trials=2),
            beneficial_space=SearchSpace(lr_low=1e-4, lr_high=3e-2, steps_min=100, steps_max=200, steps_step=100,
                                         batch_sizes=(24,), kinds=("probe",)),
            beneficial_search=SearchConfig(max_trials=2, patience=2, reruns=1, eval_every=50, tpe_startup_trials=2),
            selection_max=200, report_max=400, suite_n=100, suite_seeds=(0, 1), suite_full_steps=100,
            large_sizes=(500, 1000), long_steps=500, long_eval_every=50, grid_steps=50,
            lr_grid=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), lora_steps=150,
            calibration_variants={
                "easy (60 names, 60% nouns)": {"names_per_gender": 60, "noun_cue_rate": 0.6},
                "calibrated (all names, 15% nouns)": {},
            },
            calibration_sizes=(20, 200),
        )
    if name == "gpu":
        return Scale(
            name="gpu", n_bios=20000, data_knobs=DATA_KNOBS, max_length=64, base_kind="minilm",
            corpus_bios=0, mlm_steps=0, mlm_batch=0, mlm_lr=0.0, supervised_steps=0,
            mlac=MLAC_MAIN.replace(inner_steps=16, outer_lr=1e-5, outer_steps=2000, val_every=200,
                                   checkpoint_every=200, device="cuda"),
            mlac_seeds=(0, 1, 2), compute_marks=(500, 1000, 2000), ablations={**ABLATIONS, "K16": {}},
            beneficial_steps=500, sizes=(20, 50, 100, 200), attack_seeds=(0, 1, 2, 3, 4, 5),
            space=SearchSpace(), search=SearchConfig(max_trials=50, patience=15, reruns=5, eval_every=50),
            beneficial_space=SearchSpace(), beneficial_search=SearchConfig(max_trials=50, patience=15, reruns=5),
            selection_max=1000, report_max=2000, suite_n=100,
            suite_seeds=(0, 1, 2, 3, 4, 5), suite_full_steps=200, large_sizes=(500, 1000), long_steps=5000,
            long_eval_every=250, lr_grid=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), lora_steps=500, grid_steps=200,
            calibration_variants={"calibrated": {}}, calibration_sizes=(20, 100, 200), device="cuda",
        )
    raise ValueError(f"unknown scale {name!r}; choose from {SCALES}")
