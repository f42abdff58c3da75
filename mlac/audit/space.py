"""The attacker's search space and the rules of one search (PROTOCOL.md, "The audit").

:class:`SearchSpace` is what TPE draws from, :class:`SearchConfig` the budget (trials, patience, reruns)
and the sampler/pruner settings, :func:`reference_grid` the fixed attacker every search must match, and
:func:`derived_seed` the one way every seed of a search is derived from its identity (stable across
processes and Python versions, so a resumed or re-run search draws exactly what the first one drew).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from mlac.attacks import OPTIMIZERS, SCHEDULES, AttackParams, attack_kinds
from mlac.errors import ConfigError

#: The reference grid the searched attacker must match (PROTOCOL.md, "What makes a verdict trustworthy").
GRID_LRS = (1e-4, 3e-4, 1e-3, 3e-3)
GRID_STEPS = (100, 300, 1000)


def derived_seed(*parts: object) -> int:
    """A 31-bit seed derived from ``parts`` (stable across processes and Python versions)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little") >> 1


@dataclass(frozen=True)
class SearchSpace:
    """The attacker's hyperparameter space (default: PROTOCOL.md's reference space)."""

    lr_low: float = 1e-5
    lr_high: float = 1e-2
    steps_min: int = 100
    steps_max: int = 1000
    steps_step: int = 100
    batch_sizes: tuple[int, ...] = (12, 24, 48)
    kinds: tuple[str, ...] = ("probe", "full")
    optimizers: tuple[str, ...] = ("adam",)
    schedules: tuple[str, ...] = ("constant",)
    weight_decays: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "kinds", "optimizers", "schedules", "weight_decays"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if not value:
                raise ConfigError(f"the search space is empty: {name} has no values; give at least one")
        if not (0 < self.lr_low <= self.lr_high) or not math.isfinite(self.lr_high):
            raise ConfigError(f"the lr range must satisfy 0 < low <= high, got [{self.lr_low}, {self.lr_high}]")
        if not (1 <= self.steps_min <= self.steps_max) or self.steps_step < 1:
            raise ConfigError(f"the steps range is empty: [{self.steps_min}, {self.steps_max}] by {self.steps_step}")
        # Kinds are checked against the attack registry now, not a fixed list: a kind registered at run time passes.
        for bad, allowed, name in ((self.kinds, attack_kinds(), "kinds"), (self.optimizers, OPTIMIZERS, "optimizers"),
                                   (self.schedules, SCHEDULES, "schedules")):
            unknown = sorted(set(bad) - set(allowed))
            if unknown:
                raise ConfigError(f"unknown {name} {unknown}; choose from {allowed}")
        if any(b < 1 for b in self.batch_sizes):
            raise ConfigError("batch sizes must be at least 1")

    def suggest(self, trial: optuna.Trial) -> AttackParams:
        """Draw one configuration (dimensions with a single value are fixed, not searched)."""

        def choice(name: str, values: tuple[Any, ...]) -> Any:
            return values[0] if len(values) == 1 else trial.suggest_categorical(name, list(values))

        lr = self.lr_low if self.lr_low == self.lr_high else trial.suggest_float("lr", self.lr_low, self.lr_high, log=True)
        steps = self.steps_min
        if self.steps_max > self.steps_min:
            high = self.steps_min + (self.steps_max - self.steps_min) // self.steps_step * self.steps_step
            steps = trial.suggest_int("steps", self.steps_min, high, step=self.steps_step)
        return AttackParams(
            kind=choice("kind", self.kinds), lr=lr, steps=steps, batch_size=choice("batch_size", self.batch_sizes),
            optimizer=choice("optimizer", self.optimizers), schedule=choice("schedule", self.schedules),
            weight_decay=choice("weight_decay", self.weight_decays),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain form."""
        return asdict(self)

    def fixed_params(self, params: AttackParams) -> dict[str, Any]:
        """``params`` as Optuna trial parameters (only the searched dimensions), for ``enqueue_trial``."""
        values = {"kind": params.kind, "batch_size": params.batch_size, "optimizer": params.optimizer,
                  "schedule": params.schedule, "weight_decay": params.weight_decay}
        dims = {"kind": self.kinds, "batch_size": self.batch_sizes, "optimizer": self.optimizers,
                "schedule": self.schedules, "weight_decay": self.weight_decays}
        out: dict[str, Any] = {k: v for k, v in values.items() if len(dims[k]) > 1}
        if self.lr_low != self.lr_high:
            out["lr"] = params.lr
        if self.steps_max > self.steps_min:
            out["steps"] = params.steps
        return out


@dataclass(frozen=True)
class SearchConfig:
    """Budget and rules of one search (defaults: PROTOCOL.md's, except reruns 5 instead of 15)."""

    max_trials: int = 50
    patience: int = 15
    reruns: int = 5
    eval_every: int = 50
    parallelism: int = 1
    tpe_startup_trials: int = 10
    prune: bool = True
    prune_min_reference: int = 3
    prune_warmup_steps: int = 0
    prune_warmup_fraction: float = 0.7
    grid_start: bool = False

    def __post_init__(self) -> None:
        if self.max_trials < 1 or self.patience < 1 or self.reruns < 1 or self.eval_every < 1 or self.parallelism < 1:
            raise ConfigError("max_trials, patience, reruns, eval_every and parallelism must all be at least 1")
        if not 0.0 <= self.prune_warmup_fraction <= 1.0 or self.prune_warmup_steps < 0:
            raise ConfigError("prune_warmup_fraction must be in [0, 1] and prune_warmup_steps >= 0")

    def sampler_settings(self) -> dict[str, Any]:
        """The sampler and pruner as the result records them (with the Optuna version)."""
        return {"optuna_version": optuna.__version__, "sampler": "TPESampler", "constant_liar": True,
                "n_startup_trials": self.tpe_startup_trials, "seeding": "sha256(tpe, seed, task, n, trial number)",
                "grid_start": self.grid_start, "pruner": "median of best-so-far at equal steps" if self.prune else None,
                "prune_min_reference": self.prune_min_reference, "prune_warmup_steps": self.prune_warmup_steps,
                "prune_warmup_fraction": self.prune_warmup_fraction, "pruned_trials_count_toward_patience": False}


def reference_grid(space: SearchSpace) -> list[AttackParams]:
    """The fixed reference attacker inside ``space``: every kind x lr in :data:`GRID_LRS` (those outside the
    space's lr range are replaced by its nearest end) at the largest :data:`GRID_STEPS` value the space
    allows, Adam (or the space's first optimizer), constant schedule, the smallest batch size.

    One run per (kind, lr) covers every grid steps value: the trial evaluates the selection split every
    ``eval_every`` steps and keeps its best checkpoint, so a 1000-step run with a constant schedule contains
    the 100- and 300-step runs (same seed, same data order) and can only choose better on selection."""
    high = space.steps_min + (space.steps_max - space.steps_min) // space.steps_step * space.steps_step
    allowed = [s for s in GRID_STEPS if space.steps_min <= s <= high]
    steps = max(allowed) if allowed else high
    lrs = sorted({min(max(lr, space.lr_low), space.lr_high) for lr in GRID_LRS})
    optimizer = "adam" if "adam" in space.optimizers else space.optimizers[0]
    schedule = "constant" if "constant" in space.schedules else space.schedules[0]
    return [AttackParams(kind=kind, lr=lr, steps=steps, batch_size=min(space.batch_sizes), optimizer=optimizer,
                         schedule=schedule, weight_decay=space.weight_decays[0])
            for kind in space.kinds for lr in lrs]


