"""Functional optimisers: explicit state tensors, updates in place through ``torch.optim``'s functional API.

The same arithmetic as the fused ``torch.optim.Adam`` / ``AdamW`` / ``SGD`` (one kernel over every tensor;
on CPU 10x faster than the per-tensor loop for a tiny BERT's 4M parameters): the classes' ``step`` calls
these very functions, so the updates are bitwise the same. As in the classes, a tensor's state is created
the first time it has a gradient, and a tensor without a gradient is skipped by that step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from mlac.errors import ConfigError

NAMES = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class OptimizerConfig:
    """Which update rule and its constants. ``sgd`` uses ``momentum`` (0 is plain SGD)."""

    name: str
    weight_decay: float = 0.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise ConfigError(f"optimizer must be one of {NAMES}, got {self.name!r}")


@dataclass
class OptimizerState:
    """Per-tensor state, by position in the trainable list: Adam's step and moments, SGD's momentum buffer."""

    step: dict[int, torch.Tensor] = field(default_factory=dict)
    exp_avg: dict[int, torch.Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[int, torch.Tensor] = field(default_factory=dict)
    momentum: dict[int, torch.Tensor | None] = field(default_factory=dict)


@torch.no_grad()
def optimizer_step(config: OptimizerConfig, tensors: list[torch.Tensor], state: OptimizerState, lr: float) -> None:
    """One update of every tensor of ``tensors`` that has a ``.grad``, in place; ``state`` is updated too."""
    live = [i for i, t in enumerate(tensors) if t.grad is not None]
    params = [tensors[i] for i in live]
    grads = [tensors[i].grad for i in live]
    if config.name in ("adam", "adamw"):
        for i in live:
            if i not in state.step:
                state.step[i] = torch.zeros((), dtype=torch.float32, device=tensors[i].device)
                state.exp_avg[i] = torch.zeros_like(tensors[i], memory_format=torch.preserve_format)
                state.exp_avg_sq[i] = torch.zeros_like(tensors[i], memory_format=torch.preserve_format)
        adam(params, grads, [state.exp_avg[i] for i in live], [state.exp_avg_sq[i] for i in live], [],  # type: ignore[arg-type]
             [state.step[i] for i in live], foreach=None, capturable=False, differentiable=False, fused=True,
             grad_scale=None, found_inf=None, has_complex=False, decoupled_weight_decay=config.name == "adamw",
             amsgrad=False, beta1=config.betas[0], beta2=config.betas[1], lr=lr,
             weight_decay=config.weight_decay, eps=config.eps, maximize=False)
        return
    buffers = [state.momentum.get(i) for i in live]
    sgd(params, grads, buffers, weight_decay=config.weight_decay, momentum=config.momentum, lr=lr,  # type: ignore[arg-type]
        dampening=0.0, nesterov=False, maximize=False, has_sparse_grad=False, foreach=None, fused=True,
        grad_scale=None, found_inf=None)
    if config.momentum != 0:
        for i, buf in zip(live, buffers, strict=True):
            state.momentum[i] = buf


def clip_grad_norm(tensors: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` on the ``.grad`` of ``tensors`` (the same two steps it takes)."""
    grads = [t.grad for t in tensors if t.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, 2.0, False, None)
    torch.nn.utils.clip_grads_with_norm_(tensors, max_norm, total, None)
    return total
