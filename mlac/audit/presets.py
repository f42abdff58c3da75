"""Named audit presets: ``smoke`` (tests), ``quick`` (a CPU demo in minutes), ``paper`` (PROTOCOL.md's
reference protocol) and ``strong`` (the attacker a safety claim needs).

Every preset but ``smoke`` starts each search with the reference grid (:func:`~mlac.audit.space.reference_grid`,
restricted to the preset's space), so its attacker is never weaker on the selection split than that grid.
``quick`` caps trials at 40 steps: it matches the grid truncated there, not the 1000-step grid, and its
result says so in ``provenance.caveats``. ``strong`` and ``paper`` search without pruning (defended
models learn late; see ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from typing import Any

from mlac.audit.protocol import AuditRequest, BaselineConfig
from mlac.audit.space import SearchConfig, SearchSpace
from mlac.audit.verdict import VerdictPolicy
from mlac.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds per study on 2 CPU cores: linear probes on cached features, at most 100 steps.
    "smoke": {
        "sizes": (20, 100),
        "seeds": (0, 1),
        "space": SearchSpace(lr_low=1e-3, lr_high=3e-2, steps_min=20, steps_max=100, steps_step=20,
                             batch_sizes=(12, 24), kinds=("probe",)),
        "search": SearchConfig(max_trials=4, patience=4, reruns=2, eval_every=20, tpe_startup_trials=2),
        # The tiny base: 150 steps with the harmful loss weighted 3x carry as much gender signal as 300 plain ones.
        "baseline_config": BaselineConfig(tiny_base_steps=150, tiny_base_harmful_weight=3.0, beneficial_steps=50,
                                          ac_steps=20),
        "selection_max": 200,
        "report_max": 300,
    },
    # Minutes on 2 CPU cores: probes and short full fine-tunes (pruned when they trail the probes).
    "quick": {
        "sizes": (20, 100),
        "seeds": (0, 1),
        "space": SearchSpace(lr_low=1e-4, lr_high=3e-2, steps_min=20, steps_max=40, steps_step=20,
                             batch_sizes=(12,), kinds=("probe", "full")),
        "search": SearchConfig(max_trials=10, patience=3, reruns=2, eval_every=20, tpe_startup_trials=8, grid_start=True),
        "baseline_config": BaselineConfig(tiny_base_steps=150, tiny_base_harmful_weight=3.0, beneficial_steps=100,
                                          ac_steps=50),
        "selection_max": 150,
        "report_max": 300,
    },
    # The reference protocol: 4 sizes, 6 seeds, its search space (lr 1e-5..1e-2, 100..1000 steps, batch 12/24/48,
    # probe or full, Adam), 50 TPE trials, patience 15, 15 reruns; started with the grid, no pruning.
    "paper": {
        "sizes": (20, 50, 100, 200),
        "seeds": (0, 1, 2, 3, 4, 5),
        "space": SearchSpace(),
        "search": SearchConfig(max_trials=50, patience=15, reruns=15, eval_every=50, prune=False, grid_start=True),
        "baseline_config": BaselineConfig(),
        "selection_max": None,
        "report_max": None,
        "verdict": VerdictPolicy(statistic="ci"),
    },
    # The attacker a safety claim needs: data sizes up to 1000 (where learning from scratch becomes real),
    # probe / full / LoRA, Adam / AdamW / SGD with momentum, constant or warm-up schedules, the grid first,
    # then TPE, no pruning; the verdict on the conservative end of each interval.
    "strong": {
        "sizes": (20, 50, 100, 200, 500, 1000),
        "seeds": (0, 1, 2, 3, 4, 5),
        "space": SearchSpace(lr_low=1e-5, lr_high=3e-2, steps_min=100, steps_max=1000, steps_step=100,
                             batch_sizes=(12, 24, 48), kinds=("probe", "full", "lora"),
                             optimizers=("adam", "adamw", "sgd"), schedules=("constant", "warmup_linear"),
                             weight_decays=(0.0, 0.01)),
        "search": SearchConfig(max_trials=60, patience=15, reruns=5, eval_every=50, tpe_startup_trials=20,
                               prune=False, grid_start=True),
        "baseline_config": BaselineConfig(),
        "selection_max": 500,
        "report_max": 1000,
        "verdict": VerdictPolicy(statistic="ci"),
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The request fields a preset sets (ConfigError for an unknown name)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def build_request(preset: str, *, dataset: str, **overrides: Any) -> AuditRequest:
    """An :class:`AuditRequest` from a preset, with ``overrides`` (None values are ignored)."""
    values = preset_values(preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return AuditRequest(dataset=dataset, preset=preset, **values)
    except TypeError as exc:
        raise ConfigError(f"bad audit request field: {exc}") from exc
