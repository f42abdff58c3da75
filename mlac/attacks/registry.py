"""The attack registry: attack kinds are plug-ins looked up by name.

An attack (:class:`Attack`) says what of the model an adversary trains and how the model computes with the
trained weights; the one training loop (:mod:`mlac.attacks.loop`, driven by
:func:`~mlac.attacks.engine.run_attack_trial`) does the rest. Adding an attack is one module that defines
it and calls :func:`register_attack`; :class:`~mlac.attacks.params.AttackParams` and the search accept
every registered kind (validated at call time, so a kind registered later is accepted too).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from mlac.errors import ConfigError

if TYPE_CHECKING:
    from mlac.attacks.params import AttackParams
    from mlac.models import EncoderClassifier


@dataclass
class AttackSetup:
    """What an attack trains, for one trial.

    ``trainable``: the trunk-side tensors the optimiser updates (leaves with ``requires_grad``, never the
    model's own parameters), in optimiser order; the fresh head's parameters come after them. ``applied()``
    is a context inside which ``model.features`` computes with those tensors (a reparametrised module,
    adapter hooks). ``trains_trunk``: the trunk runs in train mode (dropout on) for training batches and its
    forward and backward are paid for (flops); False: a frozen trunk (eval mode throughout, features computed
    without gradients, so ``trainable`` must be empty), whose features of each row are paid for once.
    ``cacheable``: the features are the model's own eval-mode features (a frozen, unmodified trunk), so the
    probe feature cache may serve them. ``packed``: the trunk runs the packed
    BERT forward (:mod:`mlac.models.packed`; training batches are then not cut into micro-batches).
    """

    trainable: dict[str, torch.Tensor]
    applied: Callable[[], AbstractContextManager[object]]
    trains_trunk: bool
    cacheable: bool = False
    packed: bool = False

    def __post_init__(self) -> None:
        if self.trainable and not self.trains_trunk:
            raise ConfigError("an attack that trains trunk tensors must set trains_trunk (features need gradients)")


class Attack(Protocol):
    """One attack kind: builds the trial's :class:`AttackSetup` from the (never modified) model."""

    def setup(self, model: EncoderClassifier, params: AttackParams, seed: int) -> AttackSetup:
        """Trainable tensors and the context that makes ``model`` use them. Randomness comes from ``seed`` only
        (a generator seeded with it, or the global RNG seeded with it inside ``fork_rng``), so a trial is
        deterministic whatever ran before it in the process; ``model`` itself must not be changed."""
        ...


#: The built-in attack kinds, in the order :func:`attack_kinds` lists them (each module registers its own).
KINDS = ("probe", "full", "lora", "reinit")

_REGISTRY: dict[str, Attack] = {}


def register_attack(name: str, attack: Attack, *, replace: bool = False) -> None:
    """Make ``attack`` available as kind ``name``; re-registering a name needs ``replace=True``."""
    if not name or not name.replace("_", "").isalnum():
        raise ConfigError(f"an attack kind is a non-empty identifier (letters, digits, _), got {name!r}")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not attack:
        raise ConfigError(f"attack kind {name!r} is already registered")
    _REGISTRY[name] = attack


def unregister_attack(name: str) -> None:
    """Remove kind ``name`` (tests that register their own kinds clean up with this)."""
    _REGISTRY.pop(name, None)


def get_attack(name: str) -> Attack:
    """The attack registered as ``name``; a ConfigError naming the known kinds otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"attack kind must be one of {attack_kinds()}, got {name!r}") from None


def attack_kinds() -> tuple[str, ...]:
    """Names of the registered attack kinds: the built-ins in :data:`KINDS` order, then the others in
    registration order."""
    return tuple(k for k in KINDS if k in _REGISTRY) + tuple(k for k in _REGISTRY if k not in KINDS)
