"""The attack registry: built-in kinds, kinds registered later, unknown kinds; stored params stay the same."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pytest

from mlac.attacks import (
    KINDS,
    AttackParams,
    AttackSetup,
    attack_kinds,
    get_attack,
    register_attack,
    unregister_attack,
)
from mlac.errors import ConfigError


class _Nothing:
    def setup(self, model: object, params: AttackParams, seed: int) -> AttackSetup:
        return AttackSetup(trainable={}, applied=nullcontext, trains_trunk=False)


def test_builtin_kinds_are_registered_in_order() -> None:
    assert attack_kinds()[: len(KINDS)] == KINDS == ("probe", "full", "lora", "reinit")
    for kind in KINDS:
        assert hasattr(get_attack(kind), "setup")


def test_a_kind_registered_later_is_accepted_and_removed() -> None:
    with pytest.raises(ConfigError, match="attack kind must be one of"):
        AttackParams(kind="nothing_at_all")
    attack = _Nothing()
    register_attack("nothing_at_all", attack)
    try:
        assert attack_kinds()[-1] == "nothing_at_all"
        assert AttackParams(kind="nothing_at_all").kind == "nothing_at_all"
        assert get_attack("nothing_at_all") is attack
        register_attack("nothing_at_all", attack)  # the same object again is a no-op
        with pytest.raises(ConfigError, match="already registered"):
            register_attack("nothing_at_all", _Nothing())
        with pytest.raises(ConfigError, match="already registered"):
            register_attack("full", _Nothing())
    finally:
        unregister_attack("nothing_at_all")
    assert "nothing_at_all" not in attack_kinds()
    with pytest.raises(ConfigError, match="attack kind must be one of"):
        get_attack("nothing_at_all")


@pytest.mark.parametrize("bad", ["", "two words", "a-b"])
def test_kind_names_are_identifiers(bad: str) -> None:
    with pytest.raises(ConfigError):
        register_attack(bad, _Nothing())


def test_new_fields_leave_stored_params_byte_identical() -> None:
    """Params stored before reinit_layers existed serialise exactly as before (study names hash them)."""
    old = ('{"kind": "full", "lr": 0.0001, "steps": 100, "batch_size": 12, "optimizer": "adam", "schedule": '
           '"constant", "weight_decay": 0.0, "warmup_fraction": 0.1, "grad_clip": 100.0, "lora_r": 8}')
    assert json.dumps(AttackParams().to_dict()) == old
    assert AttackParams.from_dict(json.loads(old)) == AttackParams()
    probe = AttackParams(kind="probe", lr=3e-3, steps=20, schedule="warmup_linear")
    assert "reinit_layers" not in probe.to_dict()
    reinit = AttackParams(kind="reinit", reinit_layers=2)
    assert reinit.to_dict()["reinit_layers"] == 2
    assert AttackParams.from_dict(reinit.to_dict()) == reinit
    assert AttackParams.from_dict({**AttackParams().to_dict(), "reinit_layers": 1}) == AttackParams()
    with pytest.raises(ConfigError):
        AttackParams(kind="reinit", reinit_layers=0)


def test_a_frozen_trunk_trains_no_trunk_tensors() -> None:
    import torch

    with pytest.raises(ConfigError, match="trains_trunk"):
        AttackSetup(trainable={"trunk.x": torch.zeros(1, requires_grad=True)}, applied=nullcontext, trains_trunk=False)
