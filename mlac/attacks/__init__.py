"""Attacks: what an adversary does to a released model to get the harmful task back (PROTOCOL.md, "The audit")."""

from mlac.attacks.engine import (
    KINDS,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
    AttackData,
    AttackParams,
    ReportHook,
    TrialOutcome,
    labels_of,
    lora_trunk,
    lr_factor,
    majority_rate,
    make_optimizer,
    run_attack_trial,
    trunk_flop_params,
)

__all__ = [
    "KINDS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TASKS",
    "AttackData",
    "AttackParams",
    "ReportHook",
    "TrialOutcome",
    "labels_of",
    "lora_trunk",
    "lr_factor",
    "majority_rate",
    "make_optimizer",
    "run_attack_trial",
    "trunk_flop_params",
]
