"""MLAC censoring on torch.func: config, differentiable inner optimisers, adversarial losses, training loop."""

from mlac.censor.config import MLACConfig
from mlac.censor.losses import bounded_neg_ce_value, remap_loss, solve_remap
from mlac.censor.outer import OuterTerms, outer_objective
from mlac.censor.simulated_attack import AttackResult, finetune_attack, simulated_attack
from mlac.censor.train import CensorResult, MLACTrainer, train_mlac

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
