"""The model under audit: an HF encoder trunk, a pooling rule and a beneficial-task head."""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PreTrainedModel

from mlac.errors import ConfigError

POOLINGS = ("mean", "cls")


class EncoderClassifier(nn.Module):
    """Encoder trunk + pooled features + linear beneficial head.

    ``forward`` returns the pooled features ``[B, H]`` so that any task's head (the beneficial head here,
    or a fresh harmful head owned by an attacker) can read them; this keeps the module usable with
    ``torch.func.functional_call`` for the whole trunk.
    """

    def __init__(self, trunk: PreTrainedModel, num_beneficial: int, pooling: str = "mean") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_beneficial < 2:
            raise ConfigError(f"num_beneficial must be at least 2, got {num_beneficial}")
        self.trunk = trunk
        self.pooling = pooling
        self.hidden_size = int(trunk.config.hidden_size)
        self.beneficial_head = nn.Linear(self.hidden_size, num_beneficial)

    @property
    def num_beneficial(self) -> int:
        """Number of beneficial-task classes."""
        return int(self.beneficial_head.out_features)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, H]`` of a padded batch."""
        hidden = self.trunk(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, packed: bool = False) -> torch.Tensor:
        """Pooled features ``[B, H]``; ``packed=True`` runs the token-wise layers on the real tokens only
        (:mod:`mlac.models.packed`: less work on padded batches) where the trunk supports it."""
        from mlac.models.packed import packed_hidden, supports_packed

        if packed and supports_packed(self.trunk):
            return pool(packed_hidden(self.trunk, input_ids, attention_mask), attention_mask, self.pooling)
        return self(input_ids, attention_mask)

    def beneficial_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Beneficial-task logits ``[B, C]``."""
        return self.beneficial_head(self(input_ids, attention_mask))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Mean over non-padding tokens, or the first ([CLS]) token."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def feature_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of attack heads and probe features: float64 for a float64 model (exactness tests), float32
    otherwise (a half-precision trunk's features are read in float32)."""
    return torch.float64 if next(model.parameters()).dtype == torch.float64 else torch.float32


def make_head(
    hidden_size: int,
    num_labels: int,
    seed: int | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> nn.Linear:
    """A freshly initialised linear head (PyTorch's default uniform init, from a seeded generator)."""
    if num_labels < 2:
        raise ConfigError(f"a head needs at least 2 labels, got {num_labels}")
    head = nn.Linear(hidden_size, num_labels, device=device, dtype=dtype)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**62, ()).item()))
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        head.weight.copy_(torch.empty(num_labels, hidden_size, dtype=dtype).uniform_(-bound, bound, generator=gen))
        head.bias.copy_(torch.empty(num_labels, dtype=dtype).uniform_(-bound, bound, generator=gen))
    return head
