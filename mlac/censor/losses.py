"""Adversarial terms of MLAC: remap-invariant loss, smoothly bounded negative CE, entropy.

The remap-invariant loss is ``min_W CE(logits @ W, y)`` over matrices ``W`` with every entry in
``[-1, 1]``: the cross-entropy after the attacker's best bounded re-reading of the logits. The defender
maximises it, so it cannot escape by confidently predicting the flipped label. The reference code solves
the inner minimum with a convex-optimisation layer; here ``W*`` is found without gradient by a projected
Newton method run to convergence (:mod:`mlac.censor.remap`) and the loss is ``CE(logits @ W*.detach())``. By Danskin's theorem the gradient of that expression with respect to the
logits equals the gradient of the minimum, so no differentiation through the solver is needed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mlac.censor.remap import DEFAULT_MAX_ITER, DEFAULT_TOL, solve_remap_batched


def solve_remap(logits: torch.Tensor, labels: torch.Tensor, steps: int = DEFAULT_MAX_ITER,
                tol: float = DEFAULT_TOL) -> torch.Tensor:
    """``argmin_{W in [-1,1]^{CxC}} CE(logits @ W, labels)``, detached, in the logits' dtype.

    ``logits`` is ``[N, C]`` or batched ``[S, N, C]`` (one independent problem per leading index);
    ``labels`` is ``[N]``. Solved by projected Newton to a projected gradient below ``tol`` (at most
    ``steps`` iterations; :mod:`mlac.censor.remap`), exactly reduced to two variables for ``C = 2``.
    """
    batched = logits.dim() == 3
    x = logits if batched else logits.unsqueeze(0)
    w = solve_remap_batched(x, labels, max_iter=steps, tol=tol).w.to(logits.dtype)
    return w if batched else w[0]


def remap_loss(logits: torch.Tensor, labels: torch.Tensor, steps: int = DEFAULT_MAX_ITER) -> torch.Tensor:
    """Remap-invariant loss ``CE(logits @ W*)`` with ``W*`` held constant (Danskin); mean over rows.

    Batched ``[S, N, C]`` logits give one value per leading index, shape ``[S]``.
    """
    w = solve_remap(logits, labels, steps)
    if logits.dim() == 2:
        return F.cross_entropy(logits @ w, labels)
    remapped = torch.bmm(logits, w)
    s, n, c = remapped.shape
    per_row = F.cross_entropy(remapped.reshape(s * n, c), labels.repeat(s), reduction="none")
    return per_row.view(s, n).mean(-1)


def bounded_neg_ce_value(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The harmful CE squashed smoothly below ``2 log C``: ``f(CE) = CE / (1 + CE / (2 log C))``.

    The defender maximises it. ``f`` is ~CE for small CE, ``2/3 log C`` at chance level, and bounded, so
    the defender gains little by driving the CE to infinity (confidently wrong predictions); its
    derivative ``1 / (1 + CE / (2 log C))^2`` decays only polynomially and never reaches zero, unlike a
    hard cap at ``log C`` (zero gradient once reached) or a ``tanh`` (exponentially vanishing).
    Batched ``[S, N, C]`` logits give shape ``[S]``.
    """
    bound = 2.0 * math.log(logits.shape[-1])
    ce = _ce_per_set(logits, labels)
    return ce / (1.0 + ce / bound)


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean predictive entropy of ``softmax(logits)`` (``[S]`` for batched ``[S, N, C]`` logits)."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1).mean(-1)


def _ce_per_set(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 2:
        return F.cross_entropy(logits, labels)
    s, n, c = logits.shape
    return F.cross_entropy(logits.reshape(s * n, c), labels.repeat(s), reduction="none").view(s, n).mean(-1)


def adversarial_values(logits: torch.Tensor, labels: torch.Tensor, kind: str, remap_steps: int = DEFAULT_MAX_ITER) -> torch.Tensor:
    """The adversarial term ``L_adv`` for each of ``S`` logit sets ``[S, N, C]``: shape ``[S]``."""
    if kind == "remap":
        return remap_loss(logits, labels, remap_steps)
    if kind == "neg_ce":
        return bounded_neg_ce_value(logits, labels)
    raise ValueError(f"unknown adversarial loss {kind!r}")
