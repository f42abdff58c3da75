"""MLAC training configuration: every option PROTOCOL.md names, validated at construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mlac.errors import ConfigError

INNER_OPTIMIZERS = ("adam", "sgd")
INNER_LR_MODES = ("learned", "sampled", "fixed")
ADVERSARY_HEADS = ("fresh", "learned")
ADV_LOSSES = ("remap", "neg_ce")
#: What the adversary (learned inner lr and head) minimises: the adversarial part of the defender's
#: objective (a zero-sum game, the default), or the reference code's adapted harmful cross-entropy.
ADVERSARY_OBJECTIVES = ("game", "adapted_ce")


@dataclass(frozen=True)
class MLACConfig:
    """Options of MLAC training (defaults: the reference code's values, PROTOCOL.md).

    Objective per outer step (minimised by the defender)::

        CE_beneficial(un-adapted) - w_adv * mean_k L_adv(step k)
            + w_grad_norm * mean_k ||g_k|| - w_max_entropy * mean_k H(step k)

    with ``L_adv`` the remap-invariant loss (``adv_loss="remap"``) or the smoothly bounded negative CE
    (``"neg_ce"``: ``CE / (1 + CE / (2 log C))``, bounded by ``2 log C``), over the harmful logits of the outer batch at the
    inner steps 0..K. The adversary (inner learning rate, and the head initialisation when
    ``adversary_head="learned"``) plays the other side of the same game: it minimises the adversarial
    part of that objective (``adversary_objective="game"``) or, as the reference code did, the plain
    cross-entropy of the outer batch after the K inner steps (``"adapted_ce"``); its gradient is clipped to
    ``adversary_grad_clip`` before its Adam step. ``inner_lr_sample_low/high`` default to the reference's
    sampled range ``[1e-4, 1e-2]``.

    Validation (checkpoint selection) runs the simulated attack at the adversary's *current* inner lr, the
    attacker the model was trained against; the initial-lr numbers are recorded beside it.
    """

    # Inner loop: the simulated attacker.
    inner_steps: int = 16
    second_order: bool = True
    inner_optimizer: str = "adam"
    inner_lr: float = 3e-4
    inner_lr_mode: str = "learned"
    adversary_lr: float = 1e-4
    adversary_objective: str = "game"
    adversary_grad_clip: float = 1.0
    inner_lr_min: float = 1e-6
    inner_lr_max: float = 1e-2
    inner_lr_sample_low: float = 1e-4
    inner_lr_sample_high: float = 1e-2
    inner_batch_sizes: tuple[int, ...] = (12, 24, 48)
    inner_grad_clip: float = 100.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-20
    adversary_head: str = "fresh"
    # Adversarial terms.
    adv_loss: str = "remap"
    w_adv: float = 1.0
    w_grad_norm: float = 0.0
    w_max_entropy: float = 0.0
    remap_steps: int = 60  # at most this many Newton iterations of the remap solver (C = 2; it stops on convergence)
    # Outer loop: the defender.
    outer_lr: float = 1e-5
    outer_batch_size: int = 20
    outer_steps: int = 50_000
    outer_grad_clip: float = 10.0
    dropout: bool = True
    # Validation, checkpoints, reproducibility.
    val_every: int = 50
    val_fraction: float = 0.1
    val_max_examples: int = 200
    val_batches: int = 4
    checkpoint_every: int = 50
    max_length: int = 128
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        # JSON round trips give lists: normalise tuple fields before checking them.
        object.__setattr__(self, "inner_batch_sizes", tuple(int(b) for b in self.inner_batch_sizes))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        _validate(self)

    @property
    def learns_inner_lr(self) -> bool:
        """Whether the adversary updates the inner learning rate."""
        return self.inner_lr_mode == "learned"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MLACConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown MLAC config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> MLACConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def ac_config(cfg: MLACConfig) -> MLACConfig:
    """The AC baseline (adversarial censoring, the reference's idea): MLAC with K = 0 and a *learned* adversary.

    No simulated fine-tuning: a harmful head, trained by the adversary every step (Adam at 1e-3) to read the
    current features, and the defender maximising that head's bounded negative cross-entropy while keeping
    the beneficial loss low. (MLAC with K = 0 and a freshly drawn random head instead, the former ``ac``, is
    a strawman: a random head reads nothing, so the defender has nothing to remove.)
    """
    return cfg.replace(inner_steps=0, adv_loss="neg_ce", inner_lr_mode="fixed", adversary_head="learned",
                       adversary_objective="game", adversary_lr=1e-3, w_grad_norm=0.0)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {allowed}, got {value!r}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = (value >= 0 if allow_zero else value > 0) and math.isfinite(value)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def _validate(cfg: MLACConfig) -> None:
    _choice("inner_optimizer", cfg.inner_optimizer, INNER_OPTIMIZERS)
    _choice("inner_lr_mode", cfg.inner_lr_mode, INNER_LR_MODES)
    _choice("adversary_head", cfg.adversary_head, ADVERSARY_HEADS)
    _choice("adv_loss", cfg.adv_loss, ADV_LOSSES)
    _choice("adversary_objective", cfg.adversary_objective, ADVERSARY_OBJECTIVES)
    for name in ("inner_steps", "outer_steps", "val_every", "checkpoint_every", "remap_steps", "val_batches"):
        value = getattr(cfg, name)
        low = 0 if name == "inner_steps" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    for name in ("outer_batch_size", "max_length", "val_max_examples"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ConfigError(f"{name} must be an integer >= 2, got {value!r}")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    for name in ("inner_lr", "adversary_lr", "inner_lr_min", "inner_lr_max", "inner_lr_sample_low",
                 "inner_lr_sample_high", "inner_grad_clip", "outer_lr", "outer_grad_clip", "adam_eps", "adversary_grad_clip"):
        _positive(name, getattr(cfg, name))
    for name in ("w_adv", "w_grad_norm", "w_max_entropy"):
        _positive(name, getattr(cfg, name), allow_zero=True)
    if not cfg.inner_lr_min <= cfg.inner_lr <= cfg.inner_lr_max:
        raise ConfigError(
            f"inner_lr {cfg.inner_lr} lies outside the adversary's clamp [inner_lr_min, inner_lr_max] = "
            f"[{cfg.inner_lr_min}, {cfg.inner_lr_max}]: move it inside or widen the clamp"
        )
    if cfg.inner_lr_sample_low > cfg.inner_lr_sample_high:
        raise ConfigError("inner_lr_sample_low must not exceed inner_lr_sample_high")
    if not cfg.inner_batch_sizes or any(b < 1 for b in cfg.inner_batch_sizes):
        raise ConfigError(f"inner_batch_sizes must be a non-empty list of positive sizes, got {cfg.inner_batch_sizes}")
    if len(cfg.adam_betas) != 2 or not all(0.0 <= b < 1.0 for b in cfg.adam_betas):
        raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {cfg.adam_betas}")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {cfg.val_fraction}")
    if cfg.w_grad_norm > 0 and not cfg.second_order:
        raise ConfigError(
            "w_grad_norm > 0 needs second_order=True: the gradient-norm penalty is differentiated "
            "through the inner gradients, which first-order mode detaches"
        )
    if cfg.w_grad_norm > 0 and cfg.inner_steps == 0:
        raise ConfigError("w_grad_norm > 0 needs inner_steps >= 1 (there is no inner gradient at K = 0)")
    if cfg.device != "auto" and not (cfg.device == "cpu" or cfg.device.startswith("cuda")):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {cfg.device!r}")
