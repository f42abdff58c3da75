"""Packed BERT forward: the same hidden states and gradients as the padded forward, LoRA included."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from transformers import AutoModel, DistilBertConfig

from mlac.attacks import AttackParams, get_attack
from mlac.models import build_tiny_bert
from mlac.models.packed import packed_hidden, supports_packed
from tests.unit.attacks.peft_reference import lora_trunk


def _batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1000, 5000, (n,), generator=gen)
        mask[i, :n] = 1
    return ids, mask


def test_packed_hidden_equals_the_padded_forward_on_real_tokens() -> None:
    model, _ = build_tiny_bert(3, seed=0)
    model.eval()
    ids, mask = _batch([7, 31, 12, 31, 3, 20])
    padded = model.trunk(input_ids=ids, attention_mask=mask).last_hidden_state
    packed = packed_hidden(model.trunk, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(packed[real], padded[real], rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(packed[~real]) == 0
    torch.testing.assert_close(model.features(ids, mask, packed=True), model(ids, mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lora", [False, "peft", "functional"])
def test_packed_gradients_equal_the_padded_gradients(lora: bool | str) -> None:
    model, _ = build_tiny_bert(3, seed=1)
    applied = nullcontext
    if lora == "peft":
        model.trunk = lora_trunk(model.trunk, 4, seed=0)  # type: ignore[assignment]
    params = [p for p in model.trunk.parameters() if p.requires_grad]
    if lora == "functional":  # the audit's LoRA: forward hooks on the shared trunk's linear layers
        setup = get_attack("lora").setup(model, AttackParams(kind="lora", lora_r=4), seed=0)
        applied, params = setup.applied, list(setup.trainable.values())
        with torch.no_grad():
            for p in params[1::2]:  # B starts at zero: give it values so that the adapters matter
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(2))
    model.eval()  # no dropout: both ways compute the same function
    ids, mask = _batch([9, 25, 14, 25, 2], seed=1)
    grads = []
    for packed in (False, True):
        model.zero_grad(set_to_none=True)
        for p in params:
            p.grad = None
        with applied():
            model.features(ids, mask, packed=packed).pow(2).sum().backward()
        grads.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params])
    if lora == "functional":  # every adapter but a pooler's (unused by the hidden states) gets a gradient
        assert sum(int(g.abs().sum() > 0) for g in grads[0]) >= len(params) - 2
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_packed_is_used_only_where_it_is_exact() -> None:
    model, _ = build_tiny_bert(3, seed=0)
    assert supports_packed(model.trunk)
    assert supports_packed(lora_trunk(model.trunk, 2))
    distil = AutoModel.from_config(DistilBertConfig(vocab_size=100, dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    assert not supports_packed(distil)
    with pytest.raises(ValueError, match="BERT"):
        packed_hidden(distil, *_batch([3, 4]))
