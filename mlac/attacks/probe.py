"""Kind ``probe``: a linear probe, a fresh head on the frozen trunk (dropout off; features may be cached)."""

from __future__ import annotations

from contextlib import nullcontext

from mlac.attacks.params import AttackParams
from mlac.attacks.registry import AttackSetup, register_attack
from mlac.models import EncoderClassifier


class ProbeAttack:
    """Nothing of the trunk is trained: only the trial's head."""

    def setup(self, model: EncoderClassifier, params: AttackParams, seed: int) -> AttackSetup:
        """No trunk tensors; the model computes with its own weights."""
        return AttackSetup(trainable={}, applied=nullcontext, trains_trunk=False, cacheable=True)


register_attack("probe", ProbeAttack())
