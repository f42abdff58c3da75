"""The ``beneficial_only`` defense: fine-tune trunk and beneficial head on the beneficial task only (no defense
against the harmful task at all: the control every defense is compared with). The audit's ``beneficial_tuned``
baseline is built by :func:`train_beneficial_only` too."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn

from mlac.data.encoded import encode_split
from mlac.defenses.base import DefenseResult, Progress, ShouldStop, register
from mlac.defenses.common import (
    DataclassConfigCodec,
    check_device,
    check_int,
    check_positive,
    config_to_dict,
    load_inputs,
)
from mlac.errors import StoppedError
from mlac.models import EncoderClassifier, save_checkpoint
from mlac.tasks import TaskSpec


@dataclass(frozen=True)
class BeneficialOnlyConfig:
    """Adam at ``lr`` for ``steps`` steps of ``batch_size`` rows drawn with replacement, gradients clipped to 1."""

    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 128
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1)
        check_positive("lr", self.lr)
        check_int("batch_size", self.batch_size, 1)
        check_int("max_length", self.max_length, 2)
        check_int("seed", self.seed, 0)
        check_device(self.device)


#: Per audit preset: the steps of the audit's ``beneficial_tuned`` baseline there (mlac.audit.presets).
PRESETS: dict[str, dict[str, Any]] = {"smoke": {"steps": 50}, "quick": {"steps": 100}, "paper": {}, "strong": {}}
#: Steps between progress events.
PROGRESS_EVERY = 10


def train_beneficial_only(model: EncoderClassifier, tokenizer: Any, train: Dataset, task: TaskSpec,
                          config: BeneficialOnlyConfig, device: torch.device, *, progress: Progress | None = None,
                          should_stop: ShouldStop | None = None) -> EncoderClassifier:
    """A fine-tuned copy of ``model`` (the argument is left as it is). The draws come from generators seeded by
    ``config.seed`` only, so a run is reproducible; a stop raises StoppedError (a run is short: it starts over)."""
    data = encode_split(train, tokenizer, task, config.max_length)
    model = copy.deepcopy(model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    started = time.monotonic()
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for step in range(config.steps):
            if should_stop is not None and should_stop():
                raise StoppedError(f"beneficial-only fine-tuning stopped at step {step} of {config.steps}")
            rows = torch.randint(0, len(data), (config.batch_size,), generator=gen).tolist()
            batch = data.batch(rows, device)
            assert batch.beneficial is not None
            loss = F.cross_entropy(model.beneficial_head(model(**batch.inputs)), batch.beneficial)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            done = step + 1
            if progress is not None and (done % PROGRESS_EVERY == 0 or done == config.steps):
                elapsed = time.monotonic() - started
                progress({"event": "step", "step": done, "outer_steps": config.steps, "beneficial_ce": float(loss.detach()),
                          "elapsed_s": elapsed, "eta_s": elapsed / done * (config.steps - done)})
    model.eval()
    return model


class BeneficialOnlyDefense(DataclassConfigCodec):
    """Beneficial-only fine-tuning of the base on the train split (not resumable: a stopped run starts over)."""

    name = "beneficial_only"
    config_type = BeneficialOnlyConfig
    presets: Mapping[str, Mapping[str, Any]] = PRESETS

    def training_steps(self, config: BeneficialOnlyConfig) -> tuple[int, int]:
        return config.steps, 0

    def apply(self, base: str, dataset: str, split_seed: int, config: BeneficialOnlyConfig, out_dir: Path, *,
              device: str | None = None, progress: Progress | None = None,
              should_stop: ShouldStop | None = None) -> DefenseResult:
        inputs = load_inputs(base, dataset, split_seed, device or config.device)
        task = inputs.task
        model = train_beneficial_only(inputs.base.model, inputs.base.tokenizer, inputs.splits.train, task, config,
                                      inputs.device, progress=progress, should_stop=should_stop)
        provenance = {"parent_sha256": inputs.base.sha256, "dataset_fingerprint": inputs.splits.fingerprints["train"],
                      "seed": config.seed,
                      "training": {"kind": self.name, "config": config_to_dict(config), "steps_done": config.steps}}
        sha = save_checkpoint(model, inputs.base.tokenizer, out_dir, provenance, beneficial_names=task.beneficial_names)
        return DefenseResult(checkpoint=str(out_dir), weights_sha256=sha, steps_done=config.steps)


DEFENSE = register(BeneficialOnlyDefense())
