"""Functional LoRA equals peft's: the same initial adapters (same RNG draws), outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlac.attacks.lora import adapters_applied, init_adapters, lora_targets
from mlac.models import EncoderClassifier, build_tiny_bert
from tests.unit.attacks.peft_reference import lora_trunk


def _models(name: str, distil_model: EncoderClassifier) -> EncoderClassifier:
    if name == "bert":
        model, _ = build_tiny_bert(6, seed=1)
        return model
    return distil_model


@pytest.mark.parametrize("trunk_name", ["bert", "distil"])
@pytest.mark.parametrize("r", [2, 8])
def test_functional_adapters_equal_peft(trunk_name: str, r: int, distil_model: EncoderClassifier) -> None:
    torch.set_num_threads(1)
    model = _models(trunk_name, distil_model).eval()
    torch.manual_seed(123)  # whatever the caller's RNG state, both draw from the seed alone
    peft_trunk = lora_trunk(model.trunk, r, seed=5)
    adapters = init_adapters(model.trunk, r, seed=5)
    peft_params = [(n, p) for n, p in peft_trunk.named_parameters() if p.requires_grad]
    # The same tensors, in the same (optimiser) order: A then B of each target in named_modules order.
    assert len(peft_params) == len(adapters) == 2 * len(lora_targets(model.trunk))
    for (pname, p), (name, t) in zip(peft_params, adapters.items(), strict=True):
        assert pname.endswith(name.replace("lora_A", "lora_A.default.weight").replace("lora_B", "lora_B.default.weight"))
        assert torch.equal(p, t)
    # B starts at zero; give both a random B so that the adapters matter, then compare outputs and gradients.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for (_, p), (name, t) in zip(peft_params, adapters.items(), strict=True):
            if name.endswith("lora_B"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
                p.copy_(t)
    ids = torch.randint(5, 100, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    ref = peft_trunk(input_ids=ids, attention_mask=mask).last_hidden_state
    with adapters_applied(model.trunk, adapters, scaling=2.0):
        out = model.trunk(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(out, ref)
    plain = model.trunk(input_ids=ids, attention_mask=mask).last_hidden_state  # hooks removed on exit
    assert not torch.allclose(plain, out)
    ref.square().sum().backward()
    out.square().sum().backward()
    used = 0
    for (_, p), (_, t) in zip(peft_params, adapters.items(), strict=True):
        assert (p.grad is None) == (t.grad is None)  # a pooler's adapters get none: unused by the hidden states
        if p.grad is not None and t.grad is not None:
            used += 1
            assert torch.equal(p.grad, t.grad)
    assert used >= len(peft_params) - 2
    assert all(p.grad is None for p in model.parameters())  # the shared model's own weights got no gradient


def test_lora_needs_linear_targets() -> None:
    from mlac.errors import ConfigError

    with pytest.raises(ConfigError, match="no attention/dense linear layers"):
        lora_targets(nn.Sequential(nn.Linear(2, 2)))
