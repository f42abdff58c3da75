"""Remap-invariant loss against a brute-force grid and scipy, its Danskin gradient, and the bounded negative CE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlac.censor.losses import bounded_neg_ce_value, mean_entropy, remap_loss, solve_remap
from mlac.censor.remap import solve_remap_batched
from tests.remap_reference import scipy_remap_minimum


def _grid_min(logits: torch.Tensor, labels: torch.Tensor, points: int = 41) -> float:
    """min over a (points^4) grid of W in [-1, 1]^{2x2} of CE(logits @ W)."""
    g = torch.linspace(-1, 1, points, dtype=torch.float64)
    w = torch.cartesian_prod(g, g, g, g).view(-1, 2, 2)
    out = torch.einsum("nc,wcd->wnd", logits, w)
    ce = F.cross_entropy(out.reshape(-1, 2), labels.repeat(w.shape[0]), reduction="none").view(w.shape[0], -1)
    return float(ce.mean(1).min())


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0, 8.0])
def test_remap_equals_brute_force_grid_minimum_for_two_classes(scale):
    gen = torch.Generator().manual_seed(int(scale * 10))
    logits = torch.randn(16, 2, generator=gen, dtype=torch.float64) * scale
    labels = torch.randint(0, 2, (16,), generator=gen)
    ours = float(remap_loss(logits, labels, steps=40))
    grid = _grid_min(logits, labels)
    # The solver is at least as good as the grid (the grid only samples W) and no worse than its spacing allows.
    assert ours <= grid + 1e-9
    assert grid - ours < 2e-3 * max(1.0, scale)
    # The solution is feasible.
    w = solve_remap(logits, labels, steps=40)
    assert w.abs().max() <= 1.0


def _logits(kind: str, scale: float, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (24,), generator=gen)
    if kind == "random":
        return torch.randn(24, c, generator=gen, dtype=torch.float64) * scale, labels
    # What MLAC's inner loop produces: the logits of a two-class head are nearly anti-correlated,
    # (a, -a) plus a little noise, and a is weakly related to the label (ill-conditioned problem).
    a = torch.randn(24, 1, generator=gen, dtype=torch.float64) + 0.5 * (2 * labels.view(-1, 1).double() - 1)
    noise = 0.02 * torch.randn(24, c, generator=gen, dtype=torch.float64)
    sign = torch.tensor([-1.0, 1.0] + [0.3] * (c - 2), dtype=torch.float64)
    return scale * (a * sign + noise), labels


@pytest.mark.parametrize("c", [2, 5])
@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0, 30.0])
@pytest.mark.parametrize("kind", ["random", "anticorrelated"])
def test_remap_value_and_danskin_gradient_match_scipy_at_the_default_settings(kind, scale, c):
    """At the defaults (no step or tolerance argument): the value equals the L-BFGS-B minimum and the
    Danskin gradient ``d CE(x W*) / dx`` equals the one at scipy's minimiser, at every logit scale."""
    logits, labels = _logits(kind, scale, c, seed=int(scale * 10) + c)
    reference_value, reference_w = scipy_remap_minimum(logits, labels)
    ours = float(remap_loss(logits, labels))
    assert ours <= reference_value + 1e-9, (ours, reference_value)
    assert reference_value - ours < 1e-7
    w = solve_remap(logits, labels)
    assert float(w.abs().max()) <= 1.0 + 1e-12
    x = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(remap_loss(x, labels), x)
    (reference_grad,) = torch.autograd.grad(F.cross_entropy(x @ reference_w, labels), x)
    error = float((grad - reference_grad).norm() / reference_grad.norm().clamp_min(1e-12))
    assert error < 1e-4, f"Danskin gradient off by {error:.2e} relative"


def test_batched_remap_matches_scipy_on_every_problem_of_a_mixed_batch():
    """40 two-class problems in one batch, random and anti-correlated, logit scales 0.5 to 30: each value
    equals the reference minimum. (Caught two earlier bugs: a saturated start that stalled in a corner worse
    than the identity, and slow active-set zig-zag towards a corner minimum.)"""
    problems = [_logits(kind, scale, 2, seed=100 * i + int(scale)) for i in range(5)
                for kind in ("random", "anticorrelated") for scale in (0.5, 3.0, 10.0, 30.0)]
    labels = problems[0][1]
    logits = torch.stack([p[0] for p in problems])
    solution = solve_remap_batched(logits, labels)
    assert solution.iterations <= 20
    for s in range(logits.shape[0]):
        reference_value, _ = scipy_remap_minimum(logits[s], labels)
        assert float(solution.value[s]) <= reference_value + 1e-9, s  # (L-BFGS-B itself stops short on some)
    assert float(solution.w.abs().max()) <= 1.0


def test_remap_solver_converges_in_few_newton_iterations_and_warm_starts():
    logits, labels = _logits("anticorrelated", 30.0, 2, seed=3)
    cold = solve_remap_batched(logits.unsqueeze(0), labels)
    assert cold.residual < 1e-6 and cold.iterations < 30
    warm = solve_remap_batched(logits.unsqueeze(0), labels, init=cold.w)
    assert warm.iterations <= 1 and abs(float(warm.value - cold.value)) < 1e-12


def test_old_forty_step_first_order_solver_would_fail_this_check():
    """Negative control for the tests above: 40 projected-gradient steps (the former solver) are far off
    at logit scale 30, so the scipy comparison does detect an unconverged solver."""
    logits, labels = _logits("random", 30.0, 2, seed=302)
    x, onehot = logits.unsqueeze(0), F.one_hot(labels, 2).double().unsqueeze(0)
    step = 1.0 / (0.5 * x.pow(2).sum(-1).mean(-1)).view(1, 1, 1)
    w = torch.eye(2, dtype=torch.float64).unsqueeze(0)
    for _ in range(40):
        w = (w - step * torch.bmm(x.transpose(1, 2), torch.softmax(torch.bmm(x, w), -1) - onehot) / 24).clamp(-1, 1)
    reference_value, _ = scipy_remap_minimum(logits, labels)
    assert float(F.cross_entropy(logits @ w[0], labels)) - reference_value > 1e-3


def test_remap_cannot_be_escaped_by_flipping_labels():
    """Confidently wrong logits are as easy to read as confidently right ones (W = -I)."""
    labels = torch.tensor([0, 1] * 8)
    right = F.one_hot(labels, 2).double() * 6 - 3
    wrong = -right
    assert float(F.cross_entropy(wrong, labels)) > 5.0
    assert abs(float(remap_loss(wrong, labels)) - float(remap_loss(right, labels))) < 1e-4
    assert float(remap_loss(wrong, labels)) < 0.01


def test_remap_gradient_matches_finite_differences_of_the_minimum():
    gen = torch.Generator().manual_seed(4)
    logits = (torch.randn(12, 3, generator=gen, dtype=torch.float64) * 1.5).requires_grad_(True)
    labels = torch.randint(0, 3, (12,), generator=gen)
    (grad,) = torch.autograd.grad(remap_loss(logits, labels, steps=400), logits)
    eps = 1e-6
    numeric = torch.zeros_like(logits)
    with torch.no_grad():
        for i in range(logits.shape[0]):
            for j in range(logits.shape[1]):
                plus, minus = logits.clone(), logits.clone()
                plus[i, j] += eps
                minus[i, j] -= eps
                numeric[i, j] = (remap_loss(plus, labels, 400) - remap_loss(minus, labels, 400)) / (2 * eps)
    assert torch.allclose(grad, numeric, atol=1e-7, rtol=1e-5)


def test_batched_remap_equals_one_problem_at_a_time():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(5, 10, 2, generator=gen, dtype=torch.float64) * 2
    labels = torch.randint(0, 2, (10,), generator=gen)
    batched = remap_loss(logits, labels)
    single = torch.stack([remap_loss(logits[s], labels) for s in range(5)])
    assert torch.allclose(batched, single, atol=1e-12)


def test_bounded_negative_ce_is_bounded_and_keeps_its_gradient_past_log_c():
    labels = torch.tensor([0, 1, 0, 1])
    base = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    for scale in (0.0, 1.0, 3.0, 10.0):  # CE from log 2 to ~10 log 2
        logits = (base * scale).requires_grad_(True)
        value = bounded_neg_ce_value(logits, labels)
        assert 0.0 <= float(value) < 2 * math.log(2)
        (grad,) = torch.autograd.grad(value, logits)
        # Pushes towards larger CE with a gradient a hard cap at log 2 (or a saturated tanh) would not have.
        ce_grad = torch.autograd.grad(F.cross_entropy(logits, labels), logits)[0]
        ratio = float((grad * ce_grad).sum() / ce_grad.pow(2).sum())
        assert ratio > 0.01  # tanh(CE / log 2) would give ~1e-12 at scale 10
    small = torch.tensor([[3.0, -3.0], [-3.0, 3.0]], dtype=torch.float64)
    ce = F.cross_entropy(small, torch.tensor([0, 1]))
    assert abs(float(bounded_neg_ce_value(small, torch.tensor([0, 1]))) - float(ce)) < 0.01 * float(ce) + 1e-6


def test_mean_entropy_is_log_c_for_uniform_logits():
    assert abs(float(mean_entropy(torch.zeros(7, 4))) - math.log(4)) < 1e-6
