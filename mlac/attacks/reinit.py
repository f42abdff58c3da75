"""Kind ``reinit``: re-initialise the trunk's top ``reinit_layers`` encoder layers, then fully fine-tune.

An attacker who suspects the harmful information was scrubbed from the top of the network throws those
layers away and retrains them with the rest. The re-drawn weights follow BERT's initialisation (linear
weights ``N(0, initializer_range)``, biases 0, layer norms 1 and 0) from a generator seeded with the trial
seed; the trial then runs exactly as kind ``full`` from those weights.
"""

from __future__ import annotations

import torch
from torch import nn

from mlac.attacks.full import full_setup
from mlac.attacks.params import AttackParams
from mlac.attacks.registry import AttackSetup, register_attack
from mlac.attacks.weights import trainable_clones
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier

#: Where encoder trunks keep their layer list (BERT/MiniLM, DistilBERT, others).
LAYER_LISTS = ("encoder.layer", "transformer.layer", "encoder.layers", "layers")


def encoder_layers(trunk: nn.Module) -> tuple[str, nn.ModuleList]:
    """The trunk's stack of encoder layers and its dotted name; ConfigError when there is none."""
    modules = dict(trunk.named_modules())
    for name in LAYER_LISTS:
        found = modules.get(name)
        if isinstance(found, nn.ModuleList) and len(found) > 0:
            return name, found
    raise ConfigError(f"kind 'reinit' found no encoder layer list ({', '.join(LAYER_LISTS)}) in this trunk")


@torch.no_grad()
def reinit_top_layers(model: EncoderClassifier, tensors: dict[str, torch.Tensor], k: int, seed: int) -> list[str]:
    """Re-draw, in place in ``tensors`` (``trunk.``-prefixed clones), the weights of the top ``k`` encoder
    layers of ``model``'s trunk; returns the names re-drawn."""
    name, layers = encoder_layers(model.trunk)
    if k > len(layers):
        raise ConfigError(f"reinit_layers={k} exceeds the trunk's {len(layers)} encoder layers")
    std = float(getattr(model.trunk.config, "initializer_range", 0.02))
    gen = torch.Generator().manual_seed(seed)
    done: list[str] = []
    for index in range(len(layers) - k, len(layers)):
        for sub, module in layers[index].named_modules():
            prefix = f"trunk.{name}.{index}.{sub}." if sub else f"trunk.{name}.{index}."
            for pname, _ in module.named_parameters(recurse=False):
                key = prefix + pname
                if key not in tensors:
                    continue
                t = tensors[key]
                if isinstance(module, nn.Linear | nn.Embedding) and pname == "weight":
                    t.copy_(torch.empty(t.shape).normal_(0.0, std, generator=gen))
                elif isinstance(module, nn.LayerNorm) and pname == "weight":
                    t.fill_(1.0)
                else:
                    t.zero_()
                done.append(key)
    return done


class ReinitAttack:
    """Top ``reinit_layers`` layers re-drawn from the trial seed, then trunk + head trained as ``full``."""

    def setup(self, model: EncoderClassifier, params: AttackParams, seed: int) -> AttackSetup:
        """Clones of the trunk's weights with the top layers re-drawn."""
        tensors = trainable_clones(model.trunk, "trunk.")
        reinit_top_layers(model, tensors, params.reinit_layers, seed)
        return full_setup(model, tensors)


register_attack("reinit", ReinitAttack())
