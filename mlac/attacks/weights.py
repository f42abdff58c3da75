"""Running a shared model with other weights, without copying or modifying it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.stateless import _reparametrize_module


@contextmanager
def reparametrized(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Inside the context ``model``'s parameters named in ``tensors`` (full dotted names) are those tensors
    (tied aliases follow), so gradients flow to them; the model's own parameters are back on exit."""
    with _reparametrize_module(model, dict(tensors), tie_weights=True, strict=False):
        yield


def trainable_clones(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """Fresh leaf copies (``requires_grad``) of ``module``'s trainable parameters, named ``prefix + name``,
    in ``named_parameters`` order (the optimiser's order)."""
    return {prefix + n: p.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
            for n, p in module.named_parameters() if p.requires_grad}
