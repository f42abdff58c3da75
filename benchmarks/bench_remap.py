"""Remap solver: the converged projected Newton vs the former 40 FISTA steps, side by side.

For the logit sets one MLAC outer step solves (K + 1 = 5 sets of 20 outer-batch rows, C = 2), at several
logit scales and for anti-correlated logits like the ones a trained two-class head produces: time per call
and the Danskin gradient's relative error against an L-BFGS-B reference (``scipy``). Prints a Markdown table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_remap.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mlac.censor.remap import solve_remap_batched

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.remap_reference
from tests.remap_reference import scipy_remap_minimum


def fista_40(x: torch.Tensor, labels: torch.Tensor, steps: int = 40) -> torch.Tensor:
    """The former solver (accelerated projected gradient with the global Lipschitz step), for comparison."""
    s, n, c = x.shape
    onehot = F.one_hot(labels, c).to(x.dtype).expand(s, n, c)
    step = (1.0 / (0.5 * x.pow(2).sum(-1).mean(-1) + 1e-12)).view(s, 1, 1)
    w = torch.eye(c, dtype=x.dtype).expand(s, c, c).clone()
    y, t = w.clone(), 1.0
    for _ in range(steps):
        grad = torch.bmm(x.transpose(1, 2), torch.softmax(torch.bmm(x, y), -1) - onehot) / n
        w_next = (y - step * grad).clamp(-1.0, 1.0)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y, w, t = w_next + ((t - 1.0) / t_next) * (w_next - w), w_next, t_next
    return w


def grad_error(x: torch.Tensor, labels: torch.Tensor, w: torch.Tensor) -> float:
    worst = 0.0
    for i in range(x.shape[0]):
        xi = x[i].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(xi @ w[i], labels), xi)
        _, ref = scipy_remap_minimum(x[i], labels)
        (r,) = torch.autograd.grad(F.cross_entropy(xi @ ref, labels), xi)
        worst = max(worst, float((g - r).norm() / r.norm().clamp_min(1e-12)))
    return worst


def timed(fn, repeats: int = 30) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    print("| logits | scale | FISTA-40: time / grad error | Newton: time / grad error / iterations | time ratio |")
    print("| --- | ---: | --- | --- | ---: |")
    for kind in ("random", "anti-correlated"):
        for scale in (0.5, 3.0, 10.0, 30.0):
            labels = torch.randint(0, 2, (20,), generator=gen)
            if kind == "random":
                x = torch.randn(5, 20, 2, generator=gen, dtype=torch.float64) * scale
            else:
                a = torch.randn(5, 20, 1, generator=gen, dtype=torch.float64) + 0.5 * (2 * labels.view(1, -1, 1).double() - 1)
                x = scale * (a * torch.tensor([-1.0, 1.0], dtype=torch.float64)
                             + 0.02 * torch.randn(5, 20, 2, generator=gen, dtype=torch.float64))
            t_old = timed(lambda x=x, labels=labels: fista_40(x, labels))
            sol = solve_remap_batched(x, labels)
            t_new = timed(lambda x=x, labels=labels: solve_remap_batched(x, labels))
            e_old, e_new = grad_error(x, labels, fista_40(x, labels)), grad_error(x, labels, sol.w)
            print(f"| {kind} | {scale:g} | {t_old * 1e3:.2f} ms / {e_old:.1e} | {t_new * 1e3:.2f} ms / {e_new:.1e} / "
                  f"{sol.iterations} | {t_new / t_old:.2f}x |")


if __name__ == "__main__":
    main()
