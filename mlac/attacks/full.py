"""Kind ``full``: every trunk parameter fine-tuned with the head (dropout on while training).

A BERT trunk trains on packed real tokens (:mod:`mlac.models.packed`); any other trunk on length-sorted
micro-batches (:mod:`mlac.audit.microbatch`).
"""

from __future__ import annotations

from functools import partial

import torch

from mlac.attacks.params import AttackParams
from mlac.attacks.registry import AttackSetup, register_attack
from mlac.attacks.weights import reparametrized, trainable_clones
from mlac.models import EncoderClassifier
from mlac.models.packed import supports_packed


def full_setup(model: EncoderClassifier, trainable: dict[str, torch.Tensor] | None = None) -> AttackSetup:
    """A full fine-tune of ``model``'s trunk starting from ``trainable`` (default: copies of its weights)."""
    tensors = trainable_clones(model.trunk, "trunk.") if trainable is None else trainable
    return AttackSetup(trainable=tensors, applied=partial(reparametrized, model, tensors),
                       trains_trunk=True, packed=supports_packed(model.trunk))


class FullFineTune:
    """Trunk + head trained from the released weights."""

    def setup(self, model: EncoderClassifier, params: AttackParams, seed: int) -> AttackSetup:
        """Clones of every trainable trunk parameter."""
        return full_setup(model)


register_attack("full", FullFineTune())
