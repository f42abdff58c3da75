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


JOBS = ("nurse", "lawyer", "teacher", "surgeon")
NAMES = {0: ("mary", "anna", "linda", "susan"), 1: ("john", "peter", "mark", "james")}


@pytest.fixture(scope="session")
def toy_bios():
    """A small bios-shaped ``datasets.Dataset`` (text, profession, gender) and its TaskSpec."""
    import random

    import datasets

    from mlac.tasks import TaskSpec

    rng = random.Random(0)
    rows = []
    for i in range(160):
        g, p = rng.randint(0, 1), rng.randint(0, 3)
        text = f"{rng.choice(NAMES[g])} works as a {JOBS[p]} and they like it"
        rows.append({"id": str(i), "text": text, "text_with_first_sentence": text, "profession": p, "gender": g})
    return datasets.Dataset.from_list(rows), TaskSpec(beneficial_names=JOBS)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from mlac.models import default_tokenizer

    return default_tokenizer()
