"""Stacked optimisers: member i of a stack is updated bitwise as the functional optimiser updates it alone."""

from __future__ import annotations

import pytest
import torch

from mlac.attacks.optim import OptimizerConfig, OptimizerState, clip_grad_norm, optimizer_step
from mlac.attacks.stacked_optim import StackedOptimizerState, clip_stacked, stacked_step

LRS = (0.01, 0.003, 0.05)
DECAYS = (0.0, 0.1, 0.01)
CLIPS = (100.0, 0.3, 1.0)


def _grads(step: int, shapes: list[tuple[int, ...]], member: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 * step + member)
    return [torch.randn(s, generator=gen, dtype=torch.float64) * (1 + member) for s in shapes]


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_each_member_steps_as_it_would_alone(name: str) -> None:
    shapes = [(4, 3), (3,)]
    start = [[torch.randn(s, generator=torch.Generator().manual_seed(m * 7 + i), dtype=torch.float64)
              for i, s in enumerate(shapes)] for m in range(3)]
    alone = [[t.clone().requires_grad_(True) for t in member] for member in start]
    states = [OptimizerState() for _ in start]
    stacked = [torch.stack([member[i] for member in start]).requires_grad_(True) for i in range(len(shapes))]
    stacked_state = StackedOptimizerState()
    for step in range(4):
        for m, tensors in enumerate(alone):
            for t, g in zip(tensors, _grads(step, shapes, m), strict=True):
                t.grad = g.clone()
            clip_grad_norm(tensors, CLIPS[m])
            optimizer_step(OptimizerConfig(name, weight_decay=DECAYS[m]), tensors, states[m], LRS[m] * (step + 1))
        for i, t in enumerate(stacked):
            t.grad = torch.stack([_grads(step, shapes, m)[i] for m in range(3)])
        clip_stacked(stacked, torch.tensor(CLIPS, dtype=torch.float64))
        stacked_step(OptimizerConfig(name), stacked, stacked_state, [lr * (step + 1) for lr in LRS], DECAYS)
    for m in range(3):
        for i in range(len(shapes)):
            assert torch.equal(stacked[i][m], alone[m][i])  # the same fused kernel on the member's slices
    assert not torch.allclose(stacked[0][0], start[0][0])  # negative control: the tensors moved


def test_clip_is_per_member() -> None:
    grads = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    t = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    t.grad = grads.clone()
    norms = clip_stacked([t], torch.tensor([1.0, 1.0]))
    assert norms.tolist() == pytest.approx([5.0, 0.5])
    assert t.grad[0].norm().item() == pytest.approx(1.0, abs=1e-5)  # clipped
    assert torch.equal(t.grad[1], grads[1])  # under its bound: untouched


def test_select_keeps_the_chosen_members_state() -> None:
    t = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    t.grad = torch.ones(3, 2, dtype=torch.float64)
    state = StackedOptimizerState()
    stacked_step(OptimizerConfig("adam"), [t], state, [0.1, 0.2, 0.3], [0.0, 0.0, 0.0])
    kept = state.select(torch.tensor([0, 2]))
    assert kept.step[0].tolist() == [1.0, 1.0] and kept.exp_avg[0].shape == (2, 2)
    assert torch.equal(kept.exp_avg_sq[0], state.exp_avg_sq[0][[0, 2]])
