"""The reference LoRA: peft's adapters on a copy of the trunk, which the functional adapters of
:class:`mlac.attacks.lora.LoRAAttack` must match bitwise (peft is a test dependency only)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from mlac.attacks.lora import TARGET_NAMES
from mlac.errors import ConfigError


def lora_trunk(trunk: nn.Module, r: int, seed: int = 0) -> nn.Module:
    """A peft-wrapped copy of ``trunk`` with the adapters :class:`~mlac.attacks.lora.LoRAAttack` draws from ``seed``."""
    from peft import LoraConfig, get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, m in trunk.named_modules() if isinstance(m, nn.Linear)}
    targets = sorted(names & TARGET_NAMES)
    if not targets:
        raise ConfigError("LoRA found no attention/dense linear layers in this trunk; use kind 'full' or 'probe'")
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=targets, bias="none")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(copy.deepcopy(trunk), config)
