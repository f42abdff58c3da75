"""What an attack is configured with: :class:`AttackParams` (what the search chooses) and the lr schedules."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from mlac.attacks.registry import KINDS, attack_kinds
from mlac.data.encoded import EncodedSplit
from mlac.errors import ConfigError

__all__ = ["KINDS", "OPTIMIZERS", "SCHEDULES", "TASKS", "AttackParams", "labels_of", "lr_factor", "majority_rate"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_linear", "warmup_cosine")
TASKS = ("harmful", "beneficial")

#: Fields added after attack params were first stored: left out of :meth:`AttackParams.to_dict` while at
#: their default, so that stored params and study names of existing configurations stay byte-identical.
_OMITTED_AT_DEFAULT = ("reinit_layers",)


@dataclass(frozen=True)
class AttackParams:
    """Hyperparameters of one attack (what the search chooses).

    ``reinit_layers``: how many of the trunk's top encoder layers kind ``reinit`` re-initialises.
    """

    kind: str = "full"
    lr: float = 1e-4
    steps: int = 100
    batch_size: int = 12
    optimizer: str = "adam"
    schedule: str = "constant"
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1
    grad_clip: float = 100.0
    lora_r: int = 8
    reinit_layers: int = 1

    def __post_init__(self) -> None:
        kinds = attack_kinds()
        if self.kind not in kinds:
            raise ConfigError(f"attack kind must be one of {kinds}, got {self.kind!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.steps < 1 or self.batch_size < 1 or self.lora_r < 1 or self.reinit_layers < 1:
            raise ConfigError("steps, batch_size, lora_r and reinit_layers must be at least 1")
        if self.weight_decay < 0 or not 0 <= self.warmup_fraction < 1 or self.grad_clip <= 0:
            raise ConfigError("weight_decay >= 0, warmup_fraction in [0, 1) and grad_clip > 0 are required")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (fields added later are omitted while at their default, see above)."""
        out = asdict(self)
        defaults = {f.name: f.default for f in fields(self)}
        for name in _OMITTED_AT_DEFAULT:
            if out[name] == defaults[name]:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackParams:
        """Inverse of :meth:`to_dict` (with or without the omitted fields); unknown keys are a ConfigError."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"unknown attack parameters {extra}; known: {sorted(known)}")
        return cls(**data)


def lr_factor(step: int, p: AttackParams) -> float:
    """Multiplier of the base lr at ``step`` (0-based): 1 (``constant``), or a linear warm-up over
    ``warmup_fraction`` of the steps then a linear (``warmup_linear``) or cosine (``warmup_cosine``) decay to 0."""
    if p.schedule == "constant":
        return 1.0
    warm = max(1, round(p.warmup_fraction * p.steps))
    if step < warm:
        return (step + 1) / warm
    if p.schedule == "warmup_cosine":
        progress = min(1.0, (step - warm) / max(1, p.steps - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, (p.steps - step) / max(1, p.steps - warm))


def labels_of(split: EncodedSplit, task: str) -> torch.Tensor:
    """The label tensor of ``task`` in ``split``."""
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    return split.harmful if task == "harmful" else split.beneficial


def majority_rate(labels: torch.Tensor) -> float:
    """Share of the most common label (the accuracy of always guessing it); 0.0 for no labels."""
    if labels.numel() == 0:
        return 0.0
    return float(torch.bincount(labels.long().flatten()).max().item() / labels.numel())
