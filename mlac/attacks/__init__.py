"""Attacks: what an adversary does to a released model to get the harmful task back (PROTOCOL.md, "The audit").

Attack kinds are plug-ins (:mod:`mlac.attacks.registry`): the built-ins (``probe``, ``full``, ``lora``,
``reinit``) register themselves when this package is imported; one training loop
(:mod:`mlac.attacks.loop`) trains whatever a kind says is trainable. Other packages add kinds through the
entry-point group ``mlac_audit.attacks`` (:mod:`mlac.plugins`), so that Ray workers know them too.
"""

from mlac.attacks.engine import (
    AttackData,
    ReportHook,
    TrialOutcome,
    make_optimizer,
    run_attack_trial,
    trunk_flop_params,
)
from mlac.attacks.full import FullFineTune
from mlac.attacks.loop import train_loop
from mlac.attacks.lora import LoRAAttack
from mlac.attacks.optim import OptimizerConfig, OptimizerState
from mlac.attacks.params import (
    KINDS,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
    AttackParams,
    labels_of,
    lr_factor,
    majority_rate,
)
from mlac.attacks.probe import ProbeAttack
from mlac.attacks.registry import (
    Attack,
    AttackSetup,
    attack_kinds,
    get_attack,
    register_attack,
    unregister_attack,
)
from mlac.attacks.reinit import ReinitAttack
from mlac.plugins import ATTACKS_GROUP, load_plugins

#: Attack kinds other packages offer (entry points ``mlac_audit.attacks``), imported here: they register themselves.
PLUGINS = load_plugins(ATTACKS_GROUP)

__all__ = [
    "KINDS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TASKS",
    "Attack",
    "AttackData",
    "AttackParams",
    "AttackSetup",
    "FullFineTune",
    "LoRAAttack",
    "OptimizerConfig",
    "OptimizerState",
    "ProbeAttack",
    "ReinitAttack",
    "ReportHook",
    "TrialOutcome",
    "attack_kinds",
    "get_attack",
    "labels_of",
    "lr_factor",
    "majority_rate",
    "make_optimizer",
    "register_attack",
    "run_attack_trial",
    "train_loop",
    "trunk_flop_params",
    "unregister_attack",
]
