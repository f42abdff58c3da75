"""MLAC censoring on torch.func: config, differentiable inner optimisers, adversarial losses, training loop."""

from mlac.censor.base_model import make_base_model
from mlac.censor.batches import EncodedSplit, encode_split
from mlac.censor.config import MLACConfig
from mlac.censor.losses import bounded_neg_ce_value, remap_loss, solve_remap
from mlac.censor.outer import Batch, OuterTerms, outer_objective
from mlac.censor.simulated_attack import AttackResult, finetune_attack, simulated_attack
from mlac.censor.train import CensorResult, MLACTrainer, train_mlac

__all__ = [
    "AttackResult",
    "Batch",
    "CensorResult",
    "EncodedSplit",
    "MLACConfig",
    "MLACTrainer",
    "OuterTerms",
    "bounded_neg_ce_value",
    "encode_split",
    "finetune_attack",
    "make_base_model",
    "outer_objective",
    "remap_loss",
    "simulated_attack",
    "solve_remap",
    "train_mlac",
]
