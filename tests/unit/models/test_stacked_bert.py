"""The pure stacked BERT forward: the packed forward's features, dropout draws and gradients, member by member
under ``torch.func.vmap``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import AutoModel, BertConfig, DistilBertConfig

from mlac.attacks.lora import adapters_applied, init_adapters
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier
from mlac.models.build import trunk_from_config, with_fresh_beneficial_head
from mlac.models.stacked_bert import (
    DropoutMasks,
    bert_shape,
    draw_dropout_masks,
    padded_features,
    stack_dropout_masks,
    stack_weights,
    unstack_weights,
)

VOCAB = 100
TOL = 1e-10  #: float64 bound (absolute)


def _close(actual: Tensor, expected: Tensor, atol: float = TOL) -> None:
    torch.testing.assert_close(actual, expected, rtol=0.0, atol=atol)


def _model(hidden_p: float = 0.1, attention_p: float = 0.1, *, pooling: str = "mean", seed: int = 0,
           dtype: torch.dtype = torch.float64) -> EncoderClassifier:
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=hidden_p,
                        attention_probs_dropout_prob=attention_p)
    model = with_fresh_beneficial_head(trunk_from_config(config, seed), 3, seed).to(dtype)
    model.pooling = pooling
    return model


def _batch(lengths: list[int], seed: int = 0) -> tuple[Tensor, Tensor]:
    """Right-padded ids/mask at width max(lengths), pad id 0."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, VOCAB, (n,), generator=gen)
        mask[i, :n] = 1
    return ids, mask


def _widen(ids: Tensor, mask: Tensor, width: int, seed: int = 9) -> tuple[Tensor, Tensor]:
    """The same rows at a larger width, junk (valid) ids in the new padding."""
    extra = width - ids.shape[1]
    junk = torch.randint(0, VOCAB, (ids.shape[0], extra), generator=torch.Generator().manual_seed(seed))
    return torch.cat([ids, junk], 1), torch.cat([mask, torch.zeros_like(junk)], 1)


def _weights(model: EncoderClassifier) -> dict[str, Tensor]:
    """The trunk weights the forward reads (the pooler's are never used), as fresh leaves."""
    return {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()
            if n.startswith("trunk.") and not n.startswith("trunk.pooler.")}


def _head(seed: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, 32, generator=gen, dtype=dtype), torch.randn(3, generator=gen, dtype=dtype)


def _labels(rows: int, seed: int) -> Tensor:
    return torch.randint(0, 3, (rows,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_eval_features_equal_the_packed_and_padded_forward_at_any_width(pooling: str) -> None:
    model = _model(pooling=pooling).eval()
    shape = bert_shape(model)
    weights = _weights(model)
    ids, mask = _batch([7, 12, 3, 12, 9])
    packed = model.features(ids, mask, packed=True)
    _close(model(ids, mask), packed)
    for width in (12, 21):
        wide_ids, wide_mask = _widen(ids, mask, width)
        _close(padded_features(shape, weights, wide_ids, wide_mask), packed)
    # Negative control: one real token changed changes its row's features, and only its row's.
    changed = ids.clone()
    changed[2, 1] = (changed[2, 1] + 1) % VOCAB
    moved = padded_features(shape, weights, changed, mask)
    assert (moved[2] - packed[2]).abs().max() > 1e-4
    _close(moved[[0, 1, 3, 4]], packed[[0, 1, 3, 4]])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_masks_reproduce_the_serial_dropout_draws_and_gradients(dtype: torch.dtype) -> None:
    # float32, measured on CPU (torch 2.13): features within 1.8e-7 abs (|features| ~2), gradients within
    # 1.8e-7 of the largest gradient entry (7.6e-6 abs on entries up to ~42); the bounds leave 25x and more.
    feat_tol = TOL if dtype == torch.float64 else 1e-5
    model = _model(dtype=dtype).train()
    shape = bert_shape(model)
    ids, mask = _batch([7, 12, 3, 12, 9], seed=1)
    head_w, head_b = _head(0, dtype)
    labels = _labels(5, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        serial = model.features(ids, mask, packed=True)
        rng_after = torch.get_rng_state()
    F.cross_entropy(F.linear(serial, head_w, head_b), labels).backward()
    serial_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    gen = torch.Generator().manual_seed(11)
    masks = draw_dropout_masks(shape, mask, 17, gen, dtype)
    assert torch.equal(gen.get_state(), rng_after)  # the same draws, no more, no fewer
    weights = _weights(model)
    wide_ids, wide_mask = _widen(ids, mask, 17)
    feats = padded_features(shape, weights, wide_ids, wide_mask, masks=masks)
    _close(feats, serial, feat_tol)
    F.cross_entropy(F.linear(feats, head_w, head_b), labels).backward()
    assert set(serial_grads) == {n for n, w in weights.items() if w.grad is not None}
    scale = max(float(g.abs().max()) for g in serial_grads.values())
    grad_tol = TOL if dtype == torch.float64 else 5e-6 * scale
    for name, grad in serial_grads.items():
        got = weights[name].grad
        assert got is not None
        _close(got, grad, grad_tol)

    # Mask values: 0 or 1/(1-p) (as the dropout computes it), zeros at padding.
    keep = torch.ones((), dtype=dtype).div_(0.9)
    assert set(masks.embeddings.unique().tolist()) == {0.0, float(keep)}
    assert torch.count_nonzero(masks.embeddings[~wide_mask.bool()]) == 0
    attention = masks.layers[0].attention
    assert attention.shape == (5, 4, 17, 17)
    assert torch.count_nonzero(attention[:, :, 12:]) == 0 and torch.count_nonzero(attention[:, :, :, 12:]) == 0

    # Negative control: another seed's masks give other features.
    other = draw_dropout_masks(shape, mask, 17, torch.Generator().manual_seed(12), dtype)
    assert (padded_features(shape, weights, wide_ids, wide_mask, masks=other) - serial).abs().max() > 1e-3


@pytest.mark.parametrize(("hidden_p", "attention_p"), [(0.0, 0.1), (0.1, 0.0), (0.0, 0.0), (1.0, 0.1)])
def test_a_site_with_p_zero_or_one_draws_nothing_as_the_serial_dropout(hidden_p: float, attention_p: float) -> None:
    model = _model(hidden_p, attention_p).train()
    shape = bert_shape(model)
    ids, mask = _batch([5, 8, 2], seed=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        before = torch.get_rng_state()
        serial = model.features(ids, mask, packed=True)
        rng_after = torch.get_rng_state()
    gen = torch.Generator().manual_seed(3)
    masks = draw_dropout_masks(shape, mask, 10, gen, torch.float64)
    assert torch.equal(gen.get_state(), rng_after)
    # A site without dropout holds a 0-dim one; the others full masks.
    assert (masks.embeddings.dim() == 0) == (hidden_p == 0.0)
    assert all((layer.attention.dim() == 0) == (attention_p == 0.0) for layer in masks.layers)
    assert all((layer.output.dim() == 0) == (hidden_p == 0.0) for layer in masks.layers)
    assert all(float(t) == 1.0 for t in (masks.embeddings, *masks.layers[0]) if t.dim() == 0)
    assert torch.equal(rng_after, before) == ({hidden_p, attention_p} <= {0.0, 1.0})
    weights = _weights(model)
    wide_ids, wide_mask = _widen(ids, mask, 10)
    _close(padded_features(shape, weights, wide_ids, wide_mask, masks=masks), serial)
    # Under vmap (in_dims=0 over the whole container) the 0-dim ones are mapped as any other mask.
    pair = torch.func.vmap(lambda i, m, d: padded_features(shape, weights, i, m, masks=d))(
        torch.stack([wide_ids, wide_ids]), torch.stack([wide_mask, wide_mask]), stack_dropout_masks([masks, masks]))
    _close(pair[1], serial)


def test_lora_adapters_are_added_as_the_hooks_add_them() -> None:
    model = _model().eval()
    shape = bert_shape(model)
    adapters = init_adapters(model.trunk, 4, seed=0)
    with torch.no_grad():  # B starts at zero: give every adapter values so that it matters
        for name, tensor in adapters.items():
            if name.endswith("lora_B"):
                tensor.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    ids, mask = _batch([6, 11, 4], seed=3)
    with adapters_applied(model.trunk, adapters, 2.0):
        serial = model.features(ids, mask, packed=True)
    stacked_names = {f"trunk.{k}": v for k, v in adapters.items()}
    weights = _weights(model)
    feats = padded_features(shape, weights, *_widen(ids, mask, 15), adapters=stacked_names, lora_scaling=2.0)
    _close(feats, serial)
    # Negative control: without the adapters (or at another scaling) the features differ.
    assert (padded_features(shape, weights, ids, mask) - serial).abs().max() > 1e-3
    assert (padded_features(shape, weights, ids, mask, adapters=stacked_names, lora_scaling=1.0) - serial).abs().max() > 1e-4


def _members(dtype: torch.dtype) -> tuple[EncoderClassifier, list[dict[str, Tensor]], list[tuple[Tensor, Tensor]]]:
    """Three perturbed copies of one model's weights and three batches of 3 rows of different lengths."""
    model = _model(dtype=dtype).train()
    base = _weights(model)
    members = []
    for i in range(3):
        gen = torch.Generator().manual_seed(100 + i)
        members.append({n: (w.detach() + 0.02 * torch.randn(w.shape, generator=gen, dtype=dtype)) for n, w in base.items()})
    batches = [_batch(lengths, seed=20 + i) for i, lengths in enumerate([[9, 4, 12], [5, 5, 3], [16, 2, 7]])]
    return model, members, batches


def _member_loss(shape_model: EncoderClassifier, weights: dict[str, Tensor], ids: Tensor, mask: Tensor,
                 masks: DropoutMasks, head: tuple[Tensor, Tensor], labels: Tensor) -> Tensor:
    feats = padded_features(bert_shape(shape_model), weights, ids, mask, masks=masks)
    return F.cross_entropy(F.linear(feats, *head), labels)


def _vmap_against_alone(dtype: torch.dtype) -> tuple[float, float]:
    """Max abs difference of the vmapped group's features against each member alone's, and that of the
    gradients relative to the largest gradient entry."""
    model, members, batches = _members(dtype)
    shape = bert_shape(model)
    width = 19  # above every member's own width (12, 5, 16)
    own_masks = [draw_dropout_masks(shape, m, m.shape[1], torch.Generator().manual_seed(s), dtype)
                 for (_, m), s in zip(batches, (1, 2, 3), strict=True)]
    wide_masks = [draw_dropout_masks(shape, m, width, torch.Generator().manual_seed(s), dtype)
                  for (_, m), s in zip(batches, (1, 2, 3), strict=True)]
    heads = [_head(10 + i, dtype) for i in range(3)]
    labels = [_labels(3, 30 + i) for i in range(3)]

    stacked = {n: t.detach().requires_grad_(True) for n, t in stack_weights(members).items()}
    wide = [_widen(ids, mask, width, seed=40 + i) for i, (ids, mask) in enumerate(batches)]
    ids = torch.stack([i for i, _ in wide])
    mask = torch.stack([m for _, m in wide])
    masks = stack_dropout_masks(wide_masks)
    head = (torch.stack([h[0] for h in heads]), torch.stack([h[1] for h in heads]))

    feats = torch.func.vmap(lambda w, i, m, d: padded_features(shape, w, i, m, masks=d))(stacked, ids, mask, masks)
    losses = torch.func.vmap(lambda w, i, m, d, h, y: _member_loss(model, w, i, m, d, h, y))(
        stacked, ids, mask, masks, head, torch.stack(labels))
    losses.sum().backward()

    feat_diff = grad_diff = grad_scale = 0.0
    for k, (weights, (ids_k, mask_k)) in enumerate(zip(unstack_weights(stacked), batches, strict=True)):
        alone = {n: t.detach().clone().requires_grad_(True) for n, t in weights.items()}
        alone_feats = padded_features(shape, alone, ids_k, mask_k, masks=own_masks[k])
        feat_diff = max(feat_diff, float((feats[k] - alone_feats).detach().abs().max()))
        _member_loss(model, alone, ids_k, mask_k, own_masks[k], heads[k], labels[k]).backward()
        for n, w in alone.items():
            got = stacked[n].grad
            assert w.grad is not None and got is not None
            grad_diff = max(grad_diff, float((got[k] - w.grad).abs().max()))
            grad_scale = max(grad_scale, float(w.grad.abs().max()))
    # Negative control: the members differ (weights, batches, masks), so their features do too.
    assert (feats[0] - feats[1]).abs().max() > 1e-3
    return feat_diff, grad_diff / grad_scale


def test_vmapped_members_equal_each_member_alone_in_float64() -> None:
    feat_diff, grad_diff = _vmap_against_alone(torch.float64)
    assert feat_diff < 1e-10 and grad_diff < 1e-10


def test_vmapped_members_equal_each_member_alone_in_float32() -> None:
    # Measured on CPU (torch 2.13): features within 3.6e-7 abs (|features| ~2), gradients within 1.4e-7 of
    # the largest gradient entry: float32 rounding of other summation orders at the common width. The
    # bounds leave a margin of 25x and more.
    feat_diff, grad_diff = _vmap_against_alone(torch.float32)
    assert feat_diff < 1e-5 and grad_diff < 5e-6


def test_a_members_dropout_is_independent_of_the_group() -> None:
    model = _model().train()
    shape = bert_shape(model)
    weights = _weights(model)
    ids, mask = _batch([6, 10, 3], seed=5)
    feats = []
    for width in (10, 13, 30):  # the member's own width, and those of groups with longer members
        masks = draw_dropout_masks(shape, mask, width, torch.Generator().manual_seed(7), torch.float64)
        feats.append(padded_features(shape, weights, *_widen(ids, mask, width), masks=masks))
    for other in feats[1:]:
        _close(other, feats[0])


def test_vmapped_lora_members_share_the_frozen_trunk() -> None:
    model = _model().eval()
    shape = bert_shape(model)
    base = {n: w.detach() for n, w in _weights(model).items()}
    adapters = [init_adapters(model.trunk, 2, seed=s) for s in range(2)]
    for s, member in enumerate(adapters):
        with torch.no_grad():
            for name, tensor in member.items():
                if name.endswith("lora_B"):
                    tensor.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(s * 1000 + len(name)))
    batches = [_batch([4, 9], seed=50), _batch([7, 2], seed=51)]
    serial = []
    for member, (ids, mask) in zip(adapters, batches, strict=True):
        with adapters_applied(model.trunk, member, 2.0):
            serial.append(model.features(ids, mask, packed=True))
    stacked = stack_weights([{f"trunk.{k}": v for k, v in member.items()} for member in adapters])
    wide = [_widen(ids, mask, 11) for ids, mask in batches]
    feats = torch.func.vmap(lambda a, i, m: padded_features(shape, base, i, m, adapters=a))(
        stacked, torch.stack([i for i, _ in wide]), torch.stack([m for _, m in wide]))
    for k in range(2):
        _close(feats[k], serial[k])


def test_non_bert_trunks_and_narrow_widths_are_refused() -> None:
    distil = AutoModel.from_config(DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=1, n_heads=2, hidden_dim=64))
    with pytest.raises(ConfigError, match="BertModel"):
        bert_shape(EncoderClassifier(distil, 2))
    model = _model()
    _, mask = _batch([5, 8])
    with pytest.raises(ConfigError, match="width"):
        draw_dropout_masks(bert_shape(model), mask, 7, torch.Generator(), torch.float64)
