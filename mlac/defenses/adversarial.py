"""The ``ac`` defense: adversarial censoring, MLAC with K = 0 inner steps and a learned adversary head
(:func:`mlac.censor.config.ac_config`). The audit's ``ac`` baseline is built by :func:`train_ac` too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.censor.config import MLACConfig, ac_config
from mlac.censor.train import CensorResult, train_mlac
from mlac.defenses.base import DefenseResult, Progress, ShouldStop, register
from mlac.defenses.common import DataclassConfigCodec, check_device, check_int, check_positive
from mlac.defenses.mlac_censor import MLACDefense
from mlac.models import EncoderClassifier
from mlac.tasks import TaskSpec


@dataclass(frozen=True)
class ACConfig:
    """Adversarial censoring: ``steps`` defender steps at ``lr`` against a harmful head the adversary keeps training."""

    steps: int = 200
    lr: float = 1e-4
    max_length: int = 128
    seed: int = 0
    #: Steps between saved resume states (None: only at the end and on stop, as the audit's baseline does).
    checkpoint_every: int | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_positive("lr", self.lr)
        check_int("max_length", self.max_length, 2)
        check_int("seed", self.seed, 0)
        if self.checkpoint_every is not None:
            check_int("checkpoint_every", self.checkpoint_every, 1)
        check_device(self.device)

    def mlac_config(self) -> MLACConfig:
        """The MLAC configuration this run trains with."""
        return ac_config(MLACConfig(
            outer_steps=self.steps, outer_lr=self.lr, val_every=max(1, self.steps // 2),
            checkpoint_every=self.checkpoint_every or self.steps, max_length=self.max_length, seed=self.seed,
            device=self.device,
        ))


#: Per audit preset: the steps of the audit's ``ac`` baseline there (mlac.audit.presets).
PRESETS: dict[str, dict[str, Any]] = {"smoke": {"steps": 20}, "quick": {"steps": 50}, "paper": {}, "strong": {}}


def train_ac(model: EncoderClassifier, tokenizer: PreTrainedTokenizerBase, train: Dataset, task: TaskSpec,
             config: ACConfig, *, out_dir: str | Path, resume: bool, parent_sha256: str | None,
             dataset_fingerprint: str | None = None, progress: Progress | None = None,
             should_stop: ShouldStop | None = None) -> CensorResult:
    """Censor ``model`` (trained in place) with AC and save it into ``out_dir``."""
    return train_mlac(model, tokenizer, train, task, config.mlac_config(), out_dir=out_dir, progress=progress,
                      should_stop=should_stop, resume=resume, parent_sha256=parent_sha256,
                      dataset_fingerprint=dataset_fingerprint, beneficial_names=task.beneficial_names)


class ACDefense(DataclassConfigCodec):
    """AC on the train split: MLAC's training with :meth:`ACConfig.mlac_config`, so resumable like MLAC (its state
    lives in ``out_dir/mlac_resume``)."""

    name = "ac"
    config_type = ACConfig
    presets: Mapping[str, Mapping[str, Any]] = PRESETS

    def training_steps(self, config: ACConfig) -> tuple[int, int]:
        return config.steps, 0

    def apply(self, base: str, dataset: str, split_seed: int, config: ACConfig, out_dir: Path, *,
              device: str | None = None, progress: Progress | None = None,
              should_stop: ShouldStop | None = None) -> DefenseResult:
        return MLACDefense().apply(base, dataset, split_seed, config.mlac_config(), out_dir, device=device,
                                   progress=progress, should_stop=should_stop)


DEFENSE = register(ACDefense())
