"""The functional optimisers and loop: bitwise the updates of fused torch.optim, and the loop's contract."""

from __future__ import annotations

import pytest
import torch

from mlac.attacks.loop import train_loop
from mlac.attacks.optim import OptimizerConfig, OptimizerState, clip_grad_norm, optimizer_step
from mlac.errors import ConfigError


def _problem(seed: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(7, 5, generator=gen), torch.randn(5, generator=gen), torch.randn(3, 3, generator=gen)]
    return tensors, torch.randn(16, 7, generator=gen), torch.randn(16, 5, generator=gen)


def _loss(ts: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
    loss = ((x @ ts[0] + ts[1] - y) ** 2).mean() * (1 + step)
    return loss + (ts[2].sum() * 0 if step % 2 else ts[2].square().sum())  # ts[2]: a gradient every other step


@pytest.mark.parametrize(("name", "wd", "clip"), [("adam", 0.0, 100.0), ("adam", 0.1, 0.5), ("adamw", 0.01, 1.0),
                                                  ("sgd", 0.0, 100.0), ("sgd", 0.05, 0.3)])
def test_functional_updates_equal_fused_torch_optim(name: str, wd: float, clip: float) -> None:
    start, x, y = _problem(0)
    ref = [t.clone().requires_grad_(True) for t in start]
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[name]
    kw = {"momentum": 0.9} if name == "sgd" else {}
    opt = cls(ref, lr=0.01, weight_decay=wd, fused=True, **kw)
    ours = [t.clone().requires_grad_(True) for t in start]
    lrs = [0.01, 0.02, 0.005, 0.01, 0.0]
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        _loss(ref, x, y, step).backward()
        torch.nn.utils.clip_grad_norm_(ref, clip)
        opt.step()

    def backward(step: int) -> None:
        _loss(ours, x, y, step).backward()

    ran = train_loop(ours, len(lrs), optimizer=OptimizerConfig(name, weight_decay=wd), lr=lambda s: lrs[s],
                     backward=backward, grad_clip=clip)
    assert ran == len(lrs)
    assert all(torch.equal(a, b) for a, b in zip(ref, ours, strict=True))
    assert not torch.equal(ours[0], start[0])


def test_tensors_without_gradients_are_skipped_like_torch_optim() -> None:
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    state = OptimizerState()
    a.grad = torch.full((3,), 0.5)
    optimizer_step(OptimizerConfig("adam"), [a, b], state, lr=0.1)
    assert torch.equal(b, torch.ones(3)) and 1 not in state.step and not torch.equal(a, torch.ones(3))
    assert float(state.step[0]) == 1.0


def test_loop_stops_when_asked_and_enables_gradients() -> None:
    t = torch.zeros(2, requires_grad=True)
    seen: list[int] = []

    def backward(step: int) -> None:
        assert torch.is_grad_enabled()
        (t - 1.0).square().sum().backward()

    def after(steps_run: int) -> bool:
        seen.append(steps_run)
        return steps_run == 3

    with torch.no_grad():
        ran = train_loop([t], 10, optimizer=OptimizerConfig("sgd", momentum=0.0), lr=lambda _: 0.1,
                         backward=backward, grad_clip=100.0, after_step=after)
    assert ran == 3 and seen == [1, 2, 3] and float(t[0]) > 0


def test_clip_matches_torch() -> None:
    gen = torch.Generator().manual_seed(1)
    ts = [torch.randn(4, generator=gen).requires_grad_(True) for _ in range(3)]
    for t in ts:
        t.grad = torch.randn(4, generator=gen) * 10
    ref = [t.detach().clone().requires_grad_(True) for t in ts]
    for r, t in zip(ref, ts, strict=True):
        r.grad = t.grad.clone()  # type: ignore[union-attr]
    assert torch.equal(clip_grad_norm(ts, 1.0), torch.nn.utils.clip_grad_norm_(ref, 1.0))
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ts, ref, strict=True))  # type: ignore[arg-type]


def test_unknown_optimizer() -> None:
    with pytest.raises(ConfigError):
        OptimizerConfig("lbfgs")
