"""The inner minimum of the remap-invariant loss, solved to convergence at every logit scale.

Problem (one per leading index of ``logits [S, N, C]``)::

    min over W in [-1, 1]^{C x C} of  mean_n CE(x_n W, y_n)

It is convex and smooth in ``W`` but badly conditioned when the logits are large or anti-correlated (the
two harmful logits of a trained model are nearly ``(a, -a)``): first-order methods with the global
Lipschitz step crawl there (40 FISTA steps left gradient errors of 5% at logit scale 10 and over 100% at
scale 30). This module solves it with second-order methods run to a stated tolerance:

- ``C = 2`` (the harmful task here) is reduced exactly first: the cross-entropy of two classes depends only
  on the remapped logit difference ``x_n . u`` with ``u = W[:, 1] - W[:, 0]``, and as ``W`` ranges over
  ``[-1, 1]^{2x2}`` the difference ``u`` ranges over exactly ``[-2, 2]^2``. The 4-variable problem is a
  2-variable box-constrained logistic regression, solved by a **projected Newton method** (Bertsekas 1982:
  Newton on the free variables, bound-active ones held, Armijo search along the projection arc; quadratic
  convergence) that stops on the projected-gradient norm, in under ~15 iterations at any logit scale.
- ``C > 2``: a **log-barrier interior-point method** (damped Newton on ``t f - sum log(1 - W_ij^2)``, ``t``
  growing) that stops on the duality-gap bound; the active-set method was slow on rank-deficient logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Stop when every problem's projected gradient ``max |z - clamp(z - grad)|`` is below this (float64).
DEFAULT_TOL = 1e-10
#: Newton iterations at most (each one halves the error at worst and squares it near the optimum).
DEFAULT_MAX_ITER = 60
_ARMIJO = 1e-4
_ALPHAS = 0.5 ** torch.arange(0, 40, dtype=torch.float64)  # step sizes tried along the projection arc

#: A variable within ``min(projected gradient, this x bound)`` of a bound, gradient outwards, is held there.
_ACTIVE_MARGIN = 5e-4

Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
Value = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RemapSolution:
    """``W*`` (``[S, C, C]``, float64), its values ``[S]``, Newton iterations, and the stopping residual: the
    projected-gradient norm (``C = 2``) or the duality-gap bound (``C > 2``)."""

    w: torch.Tensor
    value: torch.Tensor
    iterations: int
    residual: float


@torch.no_grad()
def solve_remap_batched(
    logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = DEFAULT_MAX_ITER, tol: float = DEFAULT_TOL,
    init: torch.Tensor | None = None,
) -> RemapSolution:
    """Solve the ``S`` problems of ``logits [S, N, C]`` (``labels [N]``), warm-started at ``init`` (default ``I``)."""
    x = logits.detach().to(torch.float64)
    s, _, c = x.shape
    start = torch.eye(c, dtype=torch.float64, device=x.device).expand(s, c, c) if init is None else init.to(x)
    if c == 2:
        sign = (2 * labels.to(x.device) - 1).to(torch.float64)  # +1 for class 1, -1 for class 0
        z0 = _best_of(_binary_value(x, sign), (start[:, :, 1] - start[:, :, 0]).clamp(-2.0, 2.0),
                      _binary_boundary_minimum(x, sign))
        z, iters, pg = _projected_newton(_binary_objective(x, sign), _binary_value(x, sign), z0, 2.0, max_iter, tol)
        w = torch.stack([-z / 2, z / 2], dim=-1)  # columns 0 and 1: w[:, :, 1] - w[:, :, 0] = z
    else:
        onehot = F.one_hot(labels.to(x.device), c).to(torch.float64)
        z0 = 0.9 * start.reshape(s, c * c).clamp(-1.0, 1.0)  # strictly inside the box
        z, iters, pg = _barrier_newton(_general_objective(x, onehot), _general_value(x, onehot), z0, 1.0, tol)
        w = z.view(s, c, c)
    value = _ce(torch.bmm(x, w), labels.to(x.device))
    return RemapSolution(w, value, iters, pg)


def _ce(remapped: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    s, n, c = remapped.shape
    return F.cross_entropy(remapped.reshape(s * n, c), labels.repeat(s), reduction="none").view(s, n).mean(-1)


# -- C = 2: f(u) = mean softplus(-s_n x_n . u), u in [-2, 2]^2 ----------------------------------------------
def _binary_value(x: torch.Tensor, sign: torch.Tensor) -> Value:
    def value(z: torch.Tensor) -> torch.Tensor:  # z [..., S, 2] -> [..., S]
        margin = torch.einsum("snc,...sc->...sn", x, z) * sign
        return F.softplus(-margin).mean(-1)
    return value


def _binary_objective(x: torch.Tensor, sign: torch.Tensor) -> Objective:
    n = x.shape[1]

    def objective(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        margin = torch.einsum("snc,sc->sn", x, z) * sign
        f = F.softplus(-margin).mean(-1)
        wrong = torch.sigmoid(-margin)  # probability of the wrong class
        grad = torch.einsum("sn,snc->sc", -sign * wrong, x) / n
        curvature = wrong * (1.0 - wrong)
        hess = torch.einsum("sn,snc,snd->scd", curvature, x, x) / n
        return f, grad, hess
    return objective


def _binary_boundary_minimum(x: torch.Tensor, sign: torch.Tensor, bound: float = 2.0, iters: int = 64) -> torch.Tensor:
    """The exact minimiser of the C = 2 objective over the box's boundary (``[S, 2]``).

    Each of the 4 edges (one coordinate held at ``+-bound``) is a 1-D convex problem whose derivative is
    monotone: bisection on its sign, 64 halvings of the edge (to float64 resolution). Started from the
    best boundary point, projected Newton then only has to move inwards when the minimum is interior: a
    minimum in a corner or on an edge (usual for large or anti-correlated logits, where Newton's active-set
    search converges slowly) is already exact.
    """
    s = x.shape[0]
    fixed_axis = torch.tensor([0, 0, 1, 1], device=x.device)
    fixed_value = torch.tensor([-bound, bound, -bound, bound], dtype=x.dtype, device=x.device)
    free_axis = 1 - fixed_axis
    x_fixed = x[:, :, fixed_axis].permute(2, 0, 1)  # [4, S, N]
    x_free = x[:, :, free_axis].permute(2, 0, 1)
    offset = x_fixed * fixed_value.view(4, 1, 1)

    def slope(t: torch.Tensor) -> torch.Tensor:  # t [4, S] -> d f / d t
        margin = (offset + x_free * t.unsqueeze(-1)) * sign
        return (-sign * torch.sigmoid(-margin) * x_free).mean(-1)

    lo = torch.full((4, s), -bound, dtype=x.dtype, device=x.device)
    hi = torch.full_like(lo, bound)
    for _ in range(iters):
        mid = (lo + hi) / 2
        rising = slope(mid) > 0
        hi = torch.where(rising, mid, hi)
        lo = torch.where(rising, lo, mid)
    t = (lo + hi) / 2
    points = torch.zeros(4, s, 2, dtype=x.dtype, device=x.device)
    points.scatter_(2, fixed_axis.view(4, 1, 1).expand(4, s, 1), fixed_value.view(4, 1, 1).expand(4, s, 1))
    points.scatter_(2, free_axis.view(4, 1, 1).expand(4, s, 1), t.unsqueeze(-1))
    values = _binary_value(x, sign)(points)  # [4, S]
    return points[values.argmin(0), torch.arange(s, device=x.device)]


def _best_of(value: Value, *candidates: torch.Tensor) -> torch.Tensor:
    """Per problem, the candidate point ``[S, m]`` with the lowest objective."""
    stacked = torch.stack(candidates)  # [K, S, m]
    return stacked[value(stacked).argmin(0), torch.arange(stacked.shape[1], device=stacked.device)]


# -- general C: f(W) = mean CE(x W, y), W in [-1, 1]^{C x C} flattened row-major ----------------------------
def _general_value(x: torch.Tensor, onehot: torch.Tensor) -> Value:
    c = x.shape[-1]

    def value(z: torch.Tensor) -> torch.Tensor:
        w = z.reshape(*z.shape[:-1], c, c)
        remapped = torch.einsum("snc,...scd->...snd", x, w)
        return -(torch.log_softmax(remapped, -1) * onehot).sum(-1).mean(-1)
    return value


def _general_objective(x: torch.Tensor, onehot: torch.Tensor) -> Objective:
    s, n, c = x.shape

    def objective(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = z.view(s, c, c)
        logp = torch.log_softmax(torch.bmm(x, w), -1)
        p = logp.exp()
        f = -(logp * onehot).sum(-1).mean(-1)
        grad = (torch.bmm(x.transpose(1, 2), p - onehot) / n).reshape(s, c * c)
        # d2f / dW_ij dW_kl = mean_n x_ni x_nk (diag(p_n) - p_n p_n^T)_jl
        cov = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)  # [S, N, C, C]
        hess = torch.einsum("sni,snk,snjl->sijkl", x, x, cov) / n
        return f, grad, hess.reshape(s, c * c, c * c)
    return objective


def _projected_newton(
    objective: Objective, value: Value, z: torch.Tensor, bound: float, max_iter: int, tol: float
) -> tuple[torch.Tensor, int, float]:
    """Minimise a convex function over the box ``[-bound, bound]^m`` for each of ``S`` problems ``z [S, m]``.

    Each iteration tries two projected arcs per problem and keeps whichever lowers the objective more: the
    Newton direction on the free variables (fast near the optimum) and the plain gradient (which always
    makes progress, e.g. where saturated logits make the Hessian vanish). Every accepted step lowers the
    objective, so the method cannot end worse than it started.
    """
    iterations, pg_norm = 0, float("inf")
    alphas = _ALPHAS.to(z.device).view(-1, 1, 1)
    rows = torch.arange(z.shape[0], device=z.device)
    eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
    for iterations in range(max_iter + 1):
        f, grad, hess = objective(z)
        pg = (z - (z - grad).clamp(-bound, bound)).abs().amax(-1)  # [S]
        pg_norm = float(pg.max())
        if pg_norm <= tol or iterations == max_iter:
            break
        # Bound-active variables (at a bound, the gradient pushing outwards) are held; Newton on the rest.
        margin = torch.minimum(pg, torch.full_like(pg, _ACTIVE_MARGIN * bound)).unsqueeze(-1)
        active = ((z <= -bound + margin) & (grad > 0)) | ((z >= bound - margin) & (grad < 0))
        free = ~active
        reduced = torch.where(free.unsqueeze(-1) & free.unsqueeze(-2), hess, eye * active.unsqueeze(-1).to(z.dtype))
        g_free = torch.where(free, grad, torch.zeros_like(grad))
        newton = -(torch.linalg.pinv(reduced, hermitian=True, rtol=1e-12) @ g_free.unsqueeze(-1)).squeeze(-1)
        best_z, best_f = z, f
        for direction in (newton, -grad):
            # Steps longer than the box are pointless (the projection undoes them): scale to its diameter.
            length = direction.abs().amax(-1, keepdim=True).clamp_min(1e-300)
            direction = direction * (2 * bound / length).clamp(max=1.0)
            trial = (z.unsqueeze(0) + alphas * direction.unsqueeze(0)).clamp(-bound, bound)  # [A, S, m]
            f_trial = value(trial)  # [A, S]
            decrease = (grad.unsqueeze(0) * (trial - z.unsqueeze(0))).sum(-1)
            ok = (f_trial <= f.unsqueeze(0) + _ARMIJO * decrease) & (f_trial < f.unsqueeze(0))
            first = torch.where(ok.any(0), ok.to(torch.int64).argmax(0), f_trial.argmin(0))  # [S]
            chosen, f_chosen = trial[first, rows], f_trial[first, rows]
            better = f_chosen < best_f
            best_z = torch.where(better.unsqueeze(-1), chosen, best_z)
            best_f = torch.where(better, f_chosen, best_f)
        moving = (best_f < f) & (pg > tol)  # converged problems stay where they are
        if not bool(moving.any()):  # no step lowers any open problem's objective: float precision reached
            break
        z = torch.where(moving.unsqueeze(-1), best_z, z)
    return z, iterations, pg_norm


#: Barrier method: initial weight t of the objective and its growth per centering.
_T0, _MU = 1.0, 20.0
_CENTERING_ITER = 50


def _barrier_newton(
    objective: Objective, value: Value, z: torch.Tensor, bound: float, tol: float
) -> tuple[torch.Tensor, int, float]:
    """Minimise a convex function over the open box ``(-bound, bound)^m``: log-barrier interior point method.

    Minimises ``t f(z) - sum_i log(bound^2 - z_i^2)`` by damped Newton for ``t = T0, MU T0, ...`` until the
    duality gap bound ``2m / t`` is below ``tol`` (Boyd & Vandenberghe, 11.3). Used for ``C > 2``, where the
    ``C^2`` variables make the active-set search of the projected method slow on rank-deficient logits
    (the barrier's diagonal keeps every Newton system well conditioned). Returns the final duality gap bound.
    """
    m = z.shape[-1]
    alphas = _ALPHAS.to(z.device)
    t, total = _T0, 0

    def barrier(points: torch.Tensor, weight: float) -> torch.Tensor:
        inside = (points.abs() < bound).all(-1)
        val = weight * value(points) - torch.log(bound * bound - points * points).sum(-1)
        return torch.where(inside, val, torch.full_like(val, float("inf")))

    while True:
        for _ in range(_CENTERING_ITER):
            total += 1
            _, grad, hess = objective(z)
            gap_lo, gap_hi = bound - z, bound + z
            g = t * grad + 1.0 / gap_lo - 1.0 / gap_hi
            h = t * hess + torch.diag_embed(gap_lo.pow(-2) + gap_hi.pow(-2))
            step = -torch.linalg.solve(h, g.unsqueeze(-1)).squeeze(-1)
            decrement = -(g * step).sum(-1)  # Newton decrement squared, per problem
            if float(decrement.max()) <= 1e-14:
                break
            # Largest step that stays strictly inside the box, then Armijo backtracking on the barrier function.
            room = torch.where(step > 0, gap_lo / step, torch.where(step < 0, -gap_hi / step, torch.full_like(step, float("inf"))))
            reach = (0.99 * room.amin(-1)).clamp(max=1.0)  # [S]
            trial = z.unsqueeze(0) + (alphas.view(-1, 1) * reach.view(1, -1)).unsqueeze(-1) * step.unsqueeze(0)
            current = barrier(z, t)
            ok = barrier(trial, t) <= current.unsqueeze(0) - _ARMIJO * alphas.view(-1, 1) * reach.view(1, -1) * decrement
            first = ok.to(torch.int64).argmax(0)
            chosen = trial[first, torch.arange(z.shape[0], device=z.device)]
            z = torch.where((ok.any(0) & (decrement > 1e-14)).unsqueeze(-1), chosen, z)
        gap = 2.0 * m / t
        if gap <= tol:
            return z, total, gap
        t *= _MU
