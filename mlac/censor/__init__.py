"""MLAC censoring on torch.func: config, differentiable inner optimisers, adversarial losses, training loop.

The names below are loaded on first use (PEP 562), so that ``import mlac.censor.config`` (what the CLI's
parser needs for its defaults) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlac.censor.config import MLACConfig
    from mlac.censor.losses import bounded_neg_ce_value, remap_loss, solve_remap
    from mlac.censor.outer import OuterTerms, outer_objective
    from mlac.censor.train import CensorResult, MLACTrainer, train_mlac
    from mlac.censor.validation_attack import AttackResult, finetune_attack, simulated_attack

_WHERE = {
    "MLACConfig": "config",
    "bounded_neg_ce_value": "losses", "remap_loss": "losses", "solve_remap": "losses",
    "OuterTerms": "outer", "outer_objective": "outer",
    "AttackResult": "validation_attack", "finetune_attack": "validation_attack", "simulated_attack": "validation_attack",
    "CensorResult": "train", "MLACTrainer": "train", "train_mlac": "train",
}

__all__ = [
    "AttackResult",
    "CensorResult",
    "MLACConfig",
    "MLACTrainer",
    "OuterTerms",
    "bounded_neg_ce_value",
    "finetune_attack",
    "outer_objective",
    "remap_loss",
    "simulated_attack",
    "solve_remap",
    "train_mlac",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"mlac.censor.{_WHERE[name]}"), name)
        # Kept as this package's attribute: importing ``mlac.censor.validation_attack`` set the attribute of that
        # name to the submodule, and ``from mlac.censor import simulated_attack`` must give the function.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlac.censor' has no attribute {name!r}")
