"""Differentiable optimisers for the simulated attacker, as (init, update) pairs over parameter dicts.

Every operation is an out-of-place tensor expression, so autograd can differentiate the updated
parameters with respect to the starting parameters, the gradients and the learning rate (second-order
MLAC). Adam keeps its epsilon *inside* the square root (``sqrt(v_hat + eps)``, eps = 1e-20): with the
usual ``sqrt(v_hat) + eps`` the derivative of ``sqrt`` at ``v = 0`` (embedding rows that get no gradient)
is infinite and the outer gradient becomes NaN (PROTOCOL.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import torch

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AdamState:
    """Adam's step count and moment estimates (one tensor per parameter name)."""

    step: int
    exp_avg: Params
    exp_avg_sq: Params


@dataclass(frozen=True)
class SGDState:
    """Plain SGD has no state beyond the step count."""

    step: int


class InnerOptimizer(Protocol):
    """An (init, update) pair: ``update`` returns new parameters and state, never mutating its inputs."""

    def init(self, params: Mapping[str, torch.Tensor]) -> AdamState | SGDState: ...

    def update(
        self,
        grads: Mapping[str, torch.Tensor],
        state: AdamState | SGDState,
        params: Mapping[str, torch.Tensor],
        lr: torch.Tensor | float,
    ) -> tuple[Params, AdamState | SGDState]: ...


class DifferentiableAdam:
    """Adam (Kingma & Ba) with bias correction and ``sqrt(v_hat + eps)`` in the denominator."""

    def __init__(self, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-20) -> None:
        self.beta1, self.beta2 = betas
        self.eps = eps

    def init(self, params: Mapping[str, torch.Tensor]) -> AdamState:
        zeros = {k: torch.zeros_like(v) for k, v in params.items()}
        return AdamState(0, zeros, dict(zeros))

    def update(
        self,
        grads: Mapping[str, torch.Tensor],
        state: AdamState | SGDState,
        params: Mapping[str, torch.Tensor],
        lr: torch.Tensor | float,
    ) -> tuple[Params, AdamState]:
        assert isinstance(state, AdamState)  # internal invariant: init() made it
        step = state.step + 1
        b1, b2 = self.beta1, self.beta2
        corr1 = 1.0 - b1**step
        corr2 = 1.0 - b2**step
        new_params: Params = {}
        m_new: Params = {}
        v_new: Params = {}
        # The step size (a tensor when the inner lr is learned) multiplies m / denom last: autograd then
        # keeps one extra parameter-sized tensor per step for the second-order graph instead of two.
        step_size = lr / corr1
        for name, p in params.items():
            g = grads[name]
            m = state.exp_avg[name] * b1 + g * (1.0 - b1)
            v = state.exp_avg_sq[name] * b2 + g * g * (1.0 - b2)
            denom = torch.sqrt(v / corr2 + self.eps)
            new_params[name] = p - step_size * (m / denom)
            m_new[name] = m
            v_new[name] = v
        return new_params, AdamState(step, m_new, v_new)


class DifferentiableSGD:
    """Plain gradient descent ``p - lr * g``."""

    def init(self, params: Mapping[str, torch.Tensor]) -> SGDState:
        return SGDState(0)

    def update(
        self,
        grads: Mapping[str, torch.Tensor],
        state: AdamState | SGDState,
        params: Mapping[str, torch.Tensor],
        lr: torch.Tensor | float,
    ) -> tuple[Params, SGDState]:
        return {k: p - lr * grads[k] for k, p in params.items()}, SGDState(state.step + 1)


def make_inner_optimizer(name: str, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-20) -> InnerOptimizer:
    """``'adam'`` or ``'sgd'`` (validated by :class:`~mlac.censor.config.MLACConfig`)."""
    if name == "adam":
        return DifferentiableAdam(betas, eps)
    if name == "sgd":
        return DifferentiableSGD()
    raise ValueError(f"unknown inner optimizer {name!r}")


def global_norm(grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Euclidean norm over all tensors; ``sqrt(s + tiny)`` keeps its derivative finite at zero."""
    total = torch.stack([g.pow(2).sum() for g in grads.values()]).sum()
    return torch.sqrt(total + torch.finfo(total.dtype).tiny)


def clip_by_global_norm(grads: Mapping[str, torch.Tensor], max_norm: float) -> tuple[Params, torch.Tensor]:
    """Scale ``grads`` so that their global norm is at most ``max_norm`` (differentiable); return the norm too.

    Same rule as ``torch.nn.utils.clip_grad_norm_``: factor ``min(1, max_norm / (norm + 1e-6))``.
    """
    norm = global_norm(grads)
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return {k: g * scale for k, g in grads.items()}, norm
