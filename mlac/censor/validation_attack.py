"""Attacks used to check what MLAC did: the attack MLAC simulates, a linear probe, full fine-tuning.

All three are one routine: a fresh harmful head on top of copies of the model's weights, trained for a
number of steps on labelled rows by the audit's training loop (:func:`mlac.attacks.loop.train_loop`, the
same one every audit trial uses) with MLAC's inner update rule (Adam with MLAC's epsilon, or plain SGD),
then scored by accuracy on held-out rows. ``freeze_trunk`` gives the linear probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mlac.attacks.loop import train_loop
from mlac.attacks.optim import OptimizerConfig
from mlac.censor.config import MLACConfig
from mlac.censor.outer import BENEFICIAL_PREFIX, features, head_logits
from mlac.data.encoded import EncodedSplit
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier


@dataclass(frozen=True)
class AttackResult:
    """Mean held-out accuracy over repeats, and each repeat's accuracy."""

    accuracy: float
    per_repeat: tuple[float, ...]


def fresh_head(hidden: int, num_labels: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """PyTorch's default ``nn.Linear`` init, ``U(-1/sqrt(H), 1/sqrt(H))``, drawn from ``gen``."""
    bound = 1.0 / hidden**0.5
    weight = (torch.rand(num_labels, hidden, generator=gen) * 2 - 1) * bound
    bias = (torch.rand(num_labels, generator=gen) * 2 - 1) * bound
    return {"weight": weight.to(device, dtype), "bias": bias.to(device, dtype)}


def inner_update_rule(name: str, eps: float = 1e-20) -> OptimizerConfig:
    """MLAC's inner optimiser ``name`` (``adam``: Adam with MLAC's epsilon; ``sgd``: plain SGD) as the
    functional optimiser of :mod:`mlac.attacks.optim`."""
    if name == "adam":
        return OptimizerConfig("adam", eps=eps)
    if name == "sgd":
        return OptimizerConfig("sgd", momentum=0.0)
    raise ConfigError(f"unknown inner optimizer {name!r}; choose adam or sgd")


def finetune_attack(
    model: EncoderClassifier,
    train: EncodedSplit,
    heldout: EncodedSplit,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    task: str = "harmful",
    num_labels: int = 2,
    freeze_trunk: bool = False,
    optimizer: str = "adam",
    grad_clip: float = 100.0,
    dropout: bool = False,
    repeats: int = 1,
    seed: int = 0,
    cache_features: bool = True,
) -> AttackResult:
    """Train a fresh head (and the trunk unless ``freeze_trunk``) ``steps`` times; held-out accuracy.

    Each repeat draws its own head and batches from ``seed``; the model itself is never modified.
    A probe without dropout trains on features computed once per row (``cache_features=False`` runs the
    trunk on every step instead: the same result to float rounding, many times slower).
    """
    if steps < 0 or batch_size < 1 or repeats < 1 or lr <= 0:
        raise ConfigError("an attack needs steps >= 0, batch_size >= 1, repeats >= 1 and lr > 0")
    rule = inner_update_rule(optimizer)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    base = {k: v.detach() for k, v in model.named_parameters() if not k.startswith(BENEFICIAL_PREFIX)}
    buffers = dict(model.named_buffers())
    eval_labels = heldout.harmful if task == "harmful" else heldout.beneficial
    train_labels = train.harmful if task == "harmful" else train.beneficial
    was_training = model.training
    accuracies = []
    # A linear probe without dropout: every row's trunk features are fixed, so compute them once (the
    # trunk forward was nearly all of a probe's time) and train the head on them; same rows, same heads.
    cached = _probe_features(model, {**buffers, **base}, train, heldout) if freeze_trunk and not dropout and cache_features else None
    try:
        for r in range(repeats):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + r)
            head = {k: v.requires_grad_(True) for k, v in fresh_head(model.hidden_size, num_labels, gen, device, dtype).items()}
            trunk = {} if freeze_trunk else {k: v.clone().requires_grad_(True) for k, v in base.items()}
            frozen = {**buffers, **({} if not freeze_trunk else base)}
            model.train(dropout)

            def backward(step: int, gen: torch.Generator = gen, head: dict[str, torch.Tensor] = head,
                         trunk: dict[str, torch.Tensor] = trunk, frozen: dict[str, torch.Tensor] = frozen) -> None:
                rows = torch.randint(0, len(train), (batch_size,), generator=gen).tolist()
                if cached is not None:
                    feats = cached[0][torch.as_tensor(rows, device=cached[0].device)]
                else:
                    feats = features(model, {**frozen, **trunk}, train.batch(rows, device).inputs)
                logits = head_logits(feats, head)
                F.cross_entropy(logits, train_labels[rows].to(logits.device)).backward()

            train_loop([*head.values(), *trunk.values()], steps, optimizer=rule, lr=lambda _: lr,
                       backward=backward, grad_clip=grad_clip)
            model.eval()
            final_head = {k: v.detach() for k, v in head.items()}
            if cached is not None:
                with torch.no_grad():
                    pred = head_logits(cached[1], final_head).argmax(-1).cpu()
                accuracies.append(int((pred == eval_labels).sum()) / max(1, len(heldout)))
            else:
                weights = {**frozen, **{k: v.detach() for k, v in trunk.items()}}
                accuracies.append(_accuracy(model, weights, final_head, heldout, eval_labels))
    finally:
        model.train(was_training)
    return AttackResult(sum(accuracies) / len(accuracies), tuple(accuracies))


@torch.no_grad()
def _probe_features(model: EncoderClassifier, weights: dict[str, torch.Tensor], train: EncodedSplit,
                    heldout: EncodedSplit, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of every row of ``train`` and ``heldout`` (dropout off), in row order."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for split in (train, heldout):
        parts = [features(model, weights, split.batch(range(i, min(i + chunk, len(split))), device).inputs)
                 for i in range(0, len(split), chunk)]
        out.append(torch.cat(parts) if parts else torch.empty(0, model.hidden_size, device=device))
    return out[0], out[1]


@torch.no_grad()
def _accuracy(
    model: EncoderClassifier, weights: dict[str, torch.Tensor], head: dict[str, torch.Tensor],
    split: EncodedSplit, labels: torch.Tensor, chunk: int = 64,
) -> float:
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(split), chunk):
        rows = list(range(start, min(start + chunk, len(split))))
        batch = split.batch(rows, device)
        pred = head_logits(features(model, weights, batch.inputs), head).argmax(-1).cpu()
        correct += int((pred == labels[start : start + len(rows)]).sum())
    return correct / len(split)


def simulated_attack(
    model: EncoderClassifier,
    config: MLACConfig,
    train: EncodedSplit,
    heldout: EncodedSplit,
    *,
    repeats: int = 8,
    seed: int = 0,
    batch_size: int | None = None,
) -> AttackResult:
    """The attack MLAC simulates: K inner steps at the configured initial inner lr from a fresh head.

    Uses the configured inner optimiser, gradient clip and (by default) the median inner batch size;
    averaged over ``repeats`` fresh heads. Dropout off, as an attacker scoring a model would leave it.
    """
    sizes = sorted(config.inner_batch_sizes)
    return finetune_attack(
        model, train, heldout,
        steps=config.inner_steps, lr=config.inner_lr,
        batch_size=batch_size or sizes[len(sizes) // 2],
        optimizer=config.inner_optimizer, grad_clip=config.inner_grad_clip,
        repeats=repeats, seed=seed,
    )
