"""MLACConfig: reference defaults, validation messages, JSON round trip."""

from __future__ import annotations

import json

import pytest

from mlac.censor.config import MLACConfig
from mlac.errors import ConfigError


def test_defaults_are_the_reference_values():
    cfg = MLACConfig()
    assert cfg.inner_steps == 16 and cfg.second_order and cfg.inner_optimizer == "adam"
    assert cfg.inner_lr == 3e-4 and cfg.inner_lr_mode == "learned" and cfg.adversary_lr == 1e-4
    assert (cfg.inner_lr_min, cfg.inner_lr_max) == (1e-6, 1e-2)
    assert cfg.inner_batch_sizes == (12, 24, 48) and cfg.inner_grad_clip == 100.0
    assert cfg.adversary_head == "fresh" and cfg.adv_loss == "remap" and cfg.adam_eps == 1e-20
    assert cfg.outer_lr == 1e-5 and cfg.outer_batch_size == 20 and cfg.outer_grad_clip == 10.0


def test_json_round_trip():
    cfg = MLACConfig(inner_steps=4, inner_batch_sizes=(8, 16), adv_loss="neg_ce", w_max_entropy=0.5)
    again = MLACConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inner_steps": -1}, "inner_steps"),
        ({"inner_steps": 2.5}, "inner_steps"),
        ({"outer_steps": 0}, "outer_steps"),
        ({"inner_optimizer": "rmsprop"}, "inner_optimizer"),
        ({"inner_lr_mode": "magic"}, "inner_lr_mode"),
        ({"adversary_head": "kept"}, "adversary_head"),
        ({"adv_loss": "hinge"}, "adv_loss"),
        ({"inner_lr": 0.5}, "clamp"),
        ({"inner_lr": -1e-3}, "inner_lr"),
        ({"outer_lr": float("nan")}, "outer_lr"),
        ({"w_adv": -1.0}, "w_adv"),
        ({"inner_batch_sizes": ()}, "inner_batch_sizes"),
        ({"inner_batch_sizes": (0, 4)}, "inner_batch_sizes"),
        ({"adam_betas": (0.9, 1.0)}, "adam_betas"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"w_grad_norm": 0.1, "second_order": False}, "second_order"),
        ({"outer_batch_size": 1}, "outer_batch_size"),
        ({"seed": -3}, "seed"),
        ({"device": "tpu"}, "device"),
        ({"inner_lr_sample_low": 1e-2, "inner_lr_sample_high": 1e-3}, "sample"),
    ],
)
def test_bad_values_raise_config_error_naming_the_option(changes, message):
    with pytest.raises(ConfigError, match=message):
        MLACConfig(**changes)


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match="inner_stepz"):
        MLACConfig.from_dict({"inner_stepz": 3})
