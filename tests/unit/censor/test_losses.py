"""Remap-invariant loss against a brute-force grid, its Danskin gradient, and the bounded negative CE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlac.censor.losses import bounded_neg_ce_value, mean_entropy, remap_loss, solve_remap


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
