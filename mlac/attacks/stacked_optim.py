"""Optimisers over stacked trials: every tensor has a leading member dimension, each member its own lr.

The batched runner (:mod:`mlac.attacks.batched`) keeps N trials' tensors stacked ``[N, ...]``. Each member
must be updated exactly as :mod:`mlac.attacks.optim` would update it alone: its own global-norm gradient
clip, its own learning rate and weight decay (the members' :class:`OptimizerConfig` names agree; its
``weight_decay`` is replaced by each member's own), the same Adam / AdamW / SGD-with-momentum arithmetic
(``torch.optim``'s single-tensor formulas, written out over the stack). Members never mix: every
reduction is over a member's own slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from mlac.attacks.optim import OptimizerConfig


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` ``[N]`` shaped to broadcast over ``like`` ``[N, ...]``."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def clip_stacked(tensors: list[torch.Tensor], max_norms: torch.Tensor) -> torch.Tensor:
    """Per-member ``clip_grad_norm_``: member i's gradients (its slice of every tensor) scaled by
    ``min(1, max_norm_i / (norm_i + 1e-6))`` with ``norm_i`` its global 2-norm; returns the norms ``[N]``."""
    grads = [t.grad for t in tensors if t.grad is not None]
    if not grads:
        return max_norms.new_zeros(max_norms.shape)
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2.0, dim=1) for g in grads], dim=1)
    total = torch.linalg.vector_norm(per_tensor, 2.0, dim=1)
    coef = (max_norms.to(total.dtype) / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(_per_member(coef, g))
    return total


@dataclass
class StackedOptimizerState:
    """Adam's moments or SGD's momentum buffers per stacked tensor (by position), and the step count
    (every member of a group steps together, so one count serves all)."""

    step: int = 0
    exp_avg: dict[int, torch.Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[int, torch.Tensor] = field(default_factory=dict)
    momentum: dict[int, torch.Tensor] = field(default_factory=dict)

    def select(self, keep: torch.Tensor) -> StackedOptimizerState:
        """The state of the members at positions ``keep`` (the others finished)."""
        return StackedOptimizerState(
            self.step,
            {i: t.index_select(0, keep) for i, t in self.exp_avg.items()},
            {i: t.index_select(0, keep) for i, t in self.exp_avg_sq.items()},
            {i: t.index_select(0, keep) for i, t in self.momentum.items()},
        )


@torch.no_grad()
def stacked_step(config: OptimizerConfig, tensors: list[torch.Tensor], state: StackedOptimizerState,
                 lrs: torch.Tensor, weight_decays: torch.Tensor) -> None:
    """One update of every stacked tensor with a ``.grad``, member i at ``lrs[i]`` and ``weight_decays[i]``."""
    state.step += 1
    step = state.step
    decay = bool((weight_decays != 0).any())
    for i, p in enumerate(tensors):
        grad = p.grad
        if grad is None:
            continue
        lr = _per_member(lrs, p)
        wd = _per_member(weight_decays, p)
        if config.name == "sgd":
            if decay:
                grad = grad.add(p * wd)
            if config.momentum != 0:
                buf = state.momentum.get(i)
                if buf is None:
                    buf = grad.detach().clone()
                    state.momentum[i] = buf
                else:
                    buf.mul_(config.momentum).add_(grad)
                grad = buf
            p.sub_(lr * grad)
            continue
        beta1, beta2 = config.betas
        if i not in state.exp_avg:
            state.exp_avg[i] = torch.zeros_like(p)
            state.exp_avg_sq[i] = torch.zeros_like(p)
        exp_avg, exp_avg_sq = state.exp_avg[i], state.exp_avg_sq[i]
        if config.name == "adamw":
            p.mul_(1 - lr * wd)
        elif decay:
            grad = grad.add(p * wd)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = math.sqrt(1 - beta2**step)
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(config.eps)
        p.sub_((exp_avg / denom) * (lr / bias_correction1))
