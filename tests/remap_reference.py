"""Reference solver of the remap problem for tests and benchmarks: L-BFGS-B at tight tolerances (scipy)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize


def scipy_remap_minimum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``min_{W in [-1,1]^{CxC}} mean CE(logits @ W, labels)`` and its ``W``: best of three L-BFGS-B starts."""
    x, c = logits.detach().double().numpy(), logits.shape[-1]
    onehot = np.eye(c)[labels.numpy()]

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        r = x @ w.reshape(c, c)
        r = r - r.max(1, keepdims=True)
        logp = r - np.log(np.exp(r).sum(1, keepdims=True))
        return float(-(logp * onehot).sum(1).mean()), (x.T @ (np.exp(logp) - onehot) / len(x)).ravel()

    runs = [minimize(f, start, jac=True, method="L-BFGS-B", bounds=[(-1.0, 1.0)] * (c * c),
                     options={"maxiter": 20_000, "ftol": 1e-16, "gtol": 1e-13})
            for start in (np.eye(c).ravel(), np.zeros(c * c), -np.eye(c).ravel())]
    best = min(runs, key=lambda r: r.fun)
    return float(best.fun), torch.from_numpy(best.x.reshape(c, c))
