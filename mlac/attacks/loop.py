"""The one training loop of every attack: explicit trainable tensors, explicit optimiser state.

A step is: clear the gradients, ``backward`` (the caller's forward and loss, which draws its own rows),
clip the global gradient norm, one functional optimiser update (:mod:`mlac.attacks.optim`) at the
scheduled lr, then ``after_step`` (evaluation, pruning), which may stop the loop. The tensors are leaves
the caller owns (clones of the model's weights, a fresh head), updated in place; the model under attack is
never a parameter of this loop, so it is never modified and never copied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mlac.attacks.optim import OptimizerConfig, OptimizerState, clip_grad_norm, optimizer_step


def train_loop(
    tensors: Sequence[torch.Tensor],
    steps: int,
    *,
    optimizer: OptimizerConfig,
    lr: Callable[[int], float],
    backward: Callable[[int], None],
    grad_clip: float,
    after_step: Callable[[int], bool] | None = None,
    state: OptimizerState | None = None,
) -> int:
    """Run up to ``steps`` steps (see the module docstring); returns how many ran.

    ``lr(step)`` is the learning rate of 0-based ``step``; ``backward(step)`` accumulates the step's
    gradient into the tensors' ``.grad`` (gradients are enabled for it even under ``no_grad``);
    ``after_step(steps_run)`` returning True stops the loop after that step.
    """
    trainable = list(tensors)
    state = state if state is not None else OptimizerState()
    steps_run = 0
    for step in range(steps):
        for t in trainable:
            t.grad = None
        with torch.enable_grad():
            backward(step)
        clip_grad_norm(trainable, grad_clip)
        optimizer_step(optimizer, trainable, state, lr(step))
        steps_run = step + 1
        if after_step is not None and after_step(steps_run):
            break
    return steps_run
