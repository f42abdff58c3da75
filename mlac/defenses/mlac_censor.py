"""The ``mlac`` defense: meta-learned adversarial censoring (:func:`mlac.censor.train.train_mlac`), resumable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlac.censor.config import MLACConfig
from mlac.defenses.base import DefenseResult, Progress, ShouldStop, register
from mlac.defenses.common import load_inputs

#: MLAC training settings per audit preset (the audit presets live in mlac.audit.presets); ``paper`` and
#: ``strong`` train with :class:`MLACConfig`'s defaults (the reference code's values).
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"inner_steps": 1, "outer_steps": 12, "checkpoint_every": 4, "val_every": 6, "outer_batch_size": 8,
              "inner_batch_sizes": [8], "max_length": 48, "val_max_examples": 32, "val_batches": 1, "remap_steps": 10,
              "outer_lr": 1e-4, "seed": 0},
    "quick": {"inner_steps": 4, "outer_steps": 150, "checkpoint_every": 25, "val_every": 50, "outer_batch_size": 16,
              "inner_batch_sizes": [12, 24], "max_length": 64, "val_max_examples": 100, "val_batches": 2,
              "remap_steps": 20, "outer_lr": 5e-5, "seed": 0},
    "paper": {},
    "strong": {},
}


class MLACDefense:
    """MLAC on the train split: the resume state lives in ``out_dir/mlac_resume``, so a re-run continues."""

    name = "mlac"
    config_type = MLACConfig
    presets: Mapping[str, Mapping[str, Any]] = PRESETS

    def config_from_dict(self, values: Mapping[str, Any]) -> MLACConfig:
        return MLACConfig.from_dict(dict(values))

    def config_to_dict(self, config: MLACConfig) -> dict[str, Any]:
        return config.to_dict()

    def training_steps(self, config: MLACConfig) -> tuple[int, int]:
        return config.outer_steps, config.inner_steps

    def apply(self, base: str, dataset: str, split_seed: int, config: MLACConfig, out_dir: Path, *,
              device: str | None = None, progress: Progress | None = None,
              should_stop: ShouldStop | None = None) -> DefenseResult:
        from mlac.censor.train import train_mlac

        if device is not None:
            config = config.replace(device=device)
        inputs = load_inputs(base, dataset, split_seed, config.device)
        task = inputs.task
        result = train_mlac(inputs.base.model, inputs.base.tokenizer, inputs.splits.train, task, config, out_dir=out_dir,
                            progress=progress, should_stop=should_stop, resume=True, parent_sha256=inputs.base.sha256,
                            dataset_fingerprint=inputs.splits.fingerprints["train"],
                            beneficial_names=task.beneficial_names)
        return DefenseResult(checkpoint=str(out_dir), weights_sha256=result.weights_sha256, steps_done=result.steps_done,
                             resumed_from=result.resumed_from, best_step=result.best_step,
                             best_objective=result.best_objective)


DEFENSE = register(MLACDefense())
