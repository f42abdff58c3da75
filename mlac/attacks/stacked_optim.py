"""Optimisers over stacked trials: every tensor has a leading member dimension, each member its own lr.

The batched runner (:mod:`mlac.attacks.batched`) keeps N trials' tensors stacked ``[N, ...]``. Each member
must be updated exactly as :mod:`mlac.attacks.optim` would update it alone: its own global-norm gradient
clip, its own learning rate and weight decay (the members' :class:`OptimizerConfig` names agree; its
``weight_decay`` is replaced by each member's own), the same fused Adam / AdamW / SGD-with-momentum kernels,
called on the member's own slices. Members never mix: every reduction is over a member's own slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

from mlac.attacks.optim import OptimizerConfig


@torch.no_grad()
def clip_stacked(tensors: list[torch.Tensor], max_norms: torch.Tensor) -> torch.Tensor:
    """Per-member ``clip_grad_norm_``: member i's gradients (its slice of every tensor) scaled by
    ``min(1, max_norm_i / (norm_i + 1e-6))`` with ``norm_i`` its global 2-norm, computed with the very calls
    :func:`~mlac.attacks.optim.clip_grad_norm` makes on a trial alone; returns the norms ``[N]``."""
    grads = [t.grad for t in tensors if t.grad is not None]
    if not grads:
        return max_norms.new_zeros(max_norms.shape)
    norms = []
    for m in range(grads[0].shape[0]):
        member = [g[m] for g in grads]
        total = torch.nn.utils.get_total_norm(member, 2.0, False, None)
        coef = (float(max_norms[m]) / (total + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(member, coef.to(member[0].device))
        norms.append(total)
    return torch.stack(norms)


@dataclass
class StackedOptimizerState:
    """Per stacked tensor (by position): Adam's step counts ``[N]`` and moments, or SGD's momentum buffers, all
    with the leading member dimension (member i's state is slice i)."""

    step: dict[int, torch.Tensor] = field(default_factory=dict)
    exp_avg: dict[int, torch.Tensor] = field(default_factory=dict)
    exp_avg_sq: dict[int, torch.Tensor] = field(default_factory=dict)
    momentum: dict[int, torch.Tensor] = field(default_factory=dict)

    def select(self, keep: torch.Tensor) -> StackedOptimizerState:
        """The state of the members at positions ``keep`` (the others finished)."""
        return StackedOptimizerState(
            {i: t.index_select(0, keep.to(t.device)) for i, t in self.step.items()},
            {i: t.index_select(0, keep) for i, t in self.exp_avg.items()},
            {i: t.index_select(0, keep) for i, t in self.exp_avg_sq.items()},
            {i: t.index_select(0, keep) for i, t in self.momentum.items()},
        )


@torch.no_grad()
def stacked_step(config: OptimizerConfig, tensors: list[torch.Tensor], state: StackedOptimizerState,
                 lrs: Sequence[float], weight_decays: Sequence[float]) -> None:
    """One update of every stacked tensor with a ``.grad``, member i at ``lrs[i]`` and ``weight_decays[i]``.

    Each member is one call of the fused ``torch.optim`` kernel on its own slices (views into the stacks), the
    call :func:`~mlac.attacks.optim.optimizer_step` makes for a trial alone: bitwise the same update, at the
    same cost per member.
    """
    live = [i for i, t in enumerate(tensors) if t.grad is not None]
    if not live:
        return
    adamish = config.name in ("adam", "adamw")
    for i in live:
        p = tensors[i]
        if adamish and i not in state.exp_avg:
            state.step[i] = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
            state.exp_avg[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state.exp_avg_sq[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if not adamish and config.momentum != 0 and i not in state.momentum:
            # Zeros, not "no buffer": momentum * 0 + grad is the first step's buffer exactly.
            state.momentum[i] = torch.zeros_like(p, memory_format=torch.preserve_format)
    for m, (lr, wd) in enumerate(zip(lrs, weight_decays, strict=True)):
        params = [tensors[i][m] for i in live]
        grads = [tensors[i].grad[m] for i in live]  # type: ignore[index]
        if adamish:
            adam(params, grads, [state.exp_avg[i][m] for i in live], [state.exp_avg_sq[i][m] for i in live], [],  # type: ignore[arg-type]
                 [state.step[i][m] for i in live], foreach=None, capturable=False, differentiable=False, fused=True,
                 grad_scale=None, found_inf=None, has_complex=False, decoupled_weight_decay=config.name == "adamw",
                 amsgrad=False, beta1=config.betas[0], beta2=config.betas[1], lr=float(lr),
                 weight_decay=float(wd), eps=config.eps, maximize=False)
            continue
        buffers = [state.momentum[i][m] for i in live] if config.momentum != 0 else [None] * len(live)
        sgd(params, grads, buffers, weight_decay=float(wd), momentum=config.momentum, lr=float(lr),  # type: ignore[arg-type]
            dampening=0.0, nesterov=False, maximize=False, has_sparse_grad=False, foreach=None, fused=True,
            grad_scale=None, found_inf=None)
