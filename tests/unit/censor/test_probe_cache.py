"""The censor's linear probe on cached features gives what the trunk-on-every-step loop gives."""

from __future__ import annotations

import torch

from mlac.censor.validation_attack import finetune_attack
from mlac.data.encoded import encode_split
from mlac.models import build_tiny_bert


def test_cached_probe_equals_the_trunk_forward_probe(toy_bios, tiny_tokenizer) -> None:
    ds, task = toy_bios
    enc = encode_split(ds, tiny_tokenizer, task, max_length=16)
    train, heldout = enc.subset(range(0, 100)), enc.subset(range(100, 160))
    model, _ = build_tiny_bert(len(task.beneficial_names), seed=0, tokenizer=tiny_tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for probe_task, labels in (("harmful", 2), ("beneficial", 4)):
        kw = {"steps": 40, "lr": 3e-2, "batch_size": 12, "freeze_trunk": True, "task": probe_task,
              "num_labels": labels, "repeats": 2, "seed": 5}
        fast = finetune_attack(model, train, heldout, **kw)
        slow = finetune_attack(model, train, heldout, cache_features=False, **kw)
        for a, b in zip(fast.per_repeat, slow.per_repeat, strict=True):
            assert abs(a - b) <= 1 / len(heldout) + 1e-9  # at most one example flips on float rounding
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training  # the caller's mode is restored
