"""Length-sorted micro-batches: where the cut goes, and that accumulating them gives the whole batch's gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlac.audit.microbatch import length_micro_batches, padded_tokens
from mlac.models import build_tiny_bert, make_head


def test_no_cut_when_lengths_are_even_or_the_batch_is_small() -> None:
    assert length_micro_batches([50] * 48) == [list(range(48))]
    assert length_micro_batches([10, 90, 20, 80, 30]) == [[0, 1, 2, 3, 4]]  # fewer than 2 x 8 rows
    assert length_micro_batches([]) == [[]]


def test_cut_separates_short_from_long_rows_and_partitions_the_batch() -> None:
    lengths = [100, 10] * 12
    parts = length_micro_batches(lengths)
    assert len(parts) == 2
    assert sorted(parts[0] + parts[1]) == list(range(24))
    assert {lengths[i] for i in parts[0]} == {10} and {lengths[i] for i in parts[1]} == {100}
    cost = sum(padded_tokens([lengths[i] for i in p]) for p in parts)
    assert cost == 12 * 10 + 12 * 100 < padded_tokens(lengths)


def test_cut_respects_min_rows_and_min_saving() -> None:
    lengths = [10] * 4 + [100] * 20  # the best cut would leave a 4-row part
    parts = length_micro_batches(lengths, min_rows=8)
    assert all(len(p) >= 8 for p in parts)
    # One long row among short ones: a cut saves too little to pay for a second pass.
    assert len(length_micro_batches([60] * 23 + [66])) == 1


def test_accumulated_micro_batch_gradient_equals_the_whole_batch_gradient() -> None:
    torch.manual_seed(0)
    model, _ = build_tiny_bert(3, seed=0)
    model.eval()  # no dropout: the two ways must agree to float rounding
    head = make_head(model.hidden_size, 2, seed=1)
    lengths = [int(x) for x in torch.randint(5, 60, (32,))]
    seqs = [torch.randint(1000, 2000, (n,)) for n in lengths]
    labels = torch.randint(0, 2, (32,))

    def batch(rows: list[int]) -> dict[str, torch.Tensor]:
        width = max(lengths[r] for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : lengths[r]] = seqs[r]
            mask[i, : lengths[r]] = 1
        return {"input_ids": ids, "attention_mask": mask}

    params = list(model.trunk.parameters()) + list(head.parameters())
    every = list(range(32))
    F.cross_entropy(head(model(**batch(every))), labels).backward()
    whole = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    parts = length_micro_batches(lengths)
    assert len(parts) == 2
    for part in parts:
        (F.cross_entropy(head(model(**batch(part))), labels[part], reduction="sum") / 32).backward()
    split = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    for a, b in zip(whole, split, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
