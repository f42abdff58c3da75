"""Kind ``lora``: low-rank adapters on the trunk's attention/dense linear layers, base weights frozen.

Functional LoRA: each target linear layer gets ``lora_B(lora_A(x)) * scaling`` added to its output by a
forward hook while the attack runs (the ops, in the order peft's ``lora.Linear`` runs them), with
``scaling = lora_alpha / r = 2``. The adapters are drawn exactly as peft draws them (for each target in
``named_modules`` order: ``nn.Linear(in, r)``, ``nn.Linear(r, out)``, then A re-drawn with
``kaiming_uniform_(a=sqrt(5))`` and B zeroed), from the global RNG seeded with the trial seed inside
``fork_rng``, so results equal a peft-wrapped copy of the trunk (tested) without copying the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from mlac.attacks.params import AttackParams
from mlac.attacks.registry import AttackSetup, register_attack
from mlac.attacks.weights import reparametrized
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier
from mlac.models.packed import supports_packed

#: ``lora_alpha / r`` with ``lora_alpha = 2r``: the adapters' output scale, whatever the rank.
LORA_SCALING = 2.0
#: Names (last dotted component) of the linear layers that get adapters, where the trunk has them.
TARGET_NAMES = frozenset({"query", "key", "value", "dense", "q_proj", "k_proj", "v_proj", "out_proj", "q_lin", "v_lin"})


def lora_targets(trunk: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The trunk's adapter targets in ``named_modules`` order (peft's: a name ending in a target name)."""
    found = [(n, m) for n, m in trunk.named_modules() if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in TARGET_NAMES]
    if not found:
        raise ConfigError("LoRA found no attention/dense linear layers in this trunk; use kind 'full' or 'probe'")
    return found


def init_adapters(trunk: nn.Module, r: int, seed: int) -> dict[str, torch.Tensor]:
    """Adapter weights ``{name}.lora_A`` ``[r, in]`` and ``{name}.lora_B`` ``[out, r]`` per target, as peft draws them."""
    out: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, base in lora_targets(trunk):
            lora_a = nn.Linear(base.in_features, r, bias=False)
            lora_b = nn.Linear(r, base.out_features, bias=False)
            nn.init.kaiming_uniform_(lora_a.weight, a=math.sqrt(5))
            nn.init.zeros_(lora_b.weight)
            like = base.weight
            out[f"{name}.lora_A"] = lora_a.weight.detach().to(like.device, like.dtype).requires_grad_(True)
            out[f"{name}.lora_B"] = lora_b.weight.detach().to(like.device, like.dtype).requires_grad_(True)
    return out


@contextmanager
def adapters_applied(trunk: nn.Module, adapters: dict[str, torch.Tensor], scaling: float) -> Iterator[None]:
    """Inside the context every target linear layer of ``trunk`` adds its adapter's output to its own, and
    the trunk's own weights are frozen (detached: no gradient is computed for them, as with peft)."""

    def hook(a: torch.Tensor, b: torch.Tensor, module: nn.Module, args: tuple[torch.Tensor, ...],
             result: torch.Tensor) -> torch.Tensor:
        x = args[0]
        return result + F.linear(F.linear(x, a), b) * scaling

    with ExitStack() as stack:
        stack.enter_context(reparametrized(trunk, {n: p.detach() for n, p in trunk.named_parameters()}))
        for name, module in lora_targets(trunk):
            handle = module.register_forward_hook(partial(hook, adapters[f"{name}.lora_A"], adapters[f"{name}.lora_B"]))
            stack.callback(handle.remove)
        yield


class LoRAAttack:
    """Rank-``lora_r`` adapters (alpha ``2r``, no dropout, no bias) + head; the trunk itself is frozen."""

    def setup(self, model: EncoderClassifier, params: AttackParams, seed: int) -> AttackSetup:
        """Adapters drawn from ``seed``; hooks on the shared trunk only while the attack computes."""
        adapters = init_adapters(model.trunk, params.lora_r, seed)
        scaling = LORA_SCALING
        tensors = {f"trunk.{k}": v for k, v in adapters.items()}
        return AttackSetup(trainable=tensors, applied=partial(adapters_applied, model.trunk, adapters, scaling),
                           trains_trunk=True, packed=supports_packed(model.trunk))


register_attack("lora", LoRAAttack())
