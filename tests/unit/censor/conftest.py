"""Small models shared by the censor unit tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyMLP(nn.Module):
    """Two tanh layers giving features, plus a beneficial head: the shape MLAC expects of a model."""

    def __init__(self, d_in: int = 6, hidden: int = 5, num_beneficial: int = 3) -> None:
        super().__init__()
        self.l1 = nn.Linear(d_in, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.beneficial_head = nn.Linear(hidden, num_beneficial)
        self.hidden_size = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.l2(torch.tanh(self.l1(x))))


@pytest.fixture
def mlp_factory() -> type[TinyMLP]:
    """The TinyMLP class (fixtures are how sibling test modules share code under importlib mode)."""
    return TinyMLP
