"""The torch.func outer gradient against a naive float64 reference, finite differences, and first order."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlac.censor.config import MLACConfig
from mlac.censor.losses import solve_remap
from mlac.censor.outer import embedding_rows, outer_objective
from mlac.data.encoded import Batch

REL_TOL = 1e-6


def _rel_err(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    va = torch.cat([t.reshape(-1) for t in a])
    vb = torch.cat([t.reshape(-1) for t in b])
    return float((va - vb).norm() / vb.norm())


# ----------------------------------------------------------------------------------------------------
# The naive reference: plain lists of tensors, a hand-written forward, Adam/SGD and clipping written
# out step by step, torch.autograd.grad(create_graph=True) at each inner step.
# ----------------------------------------------------------------------------------------------------

def _mlp_features(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    h = torch.tanh(x @ w["l1.weight"].T + w["l1.bias"])
    return torch.tanh(h @ w["l2.weight"].T + w["l2.bias"])


def _reference_total(feature_fn, params, head, lr, outer, inner, cfg, *, detach_inner_grads=False):
    """The outer objective computed the long way (what PROTOCOL.md's steps 2-4 say, nothing shared)."""
    trunk = {k: v for k, v in params.items() if not k.startswith("beneficial_head.")}
    feats = feature_fn(params, outer.inputs)
    ben_logits = feats @ params["beneficial_head.weight"].T + params["beneficial_head.bias"]
    ben_ce = F.cross_entropy(ben_logits, outer.beneficial)
    names = [*trunk, "hw", "hb"]
    cur = [*trunk.values(), head["weight"], head["bias"]]
    m = [torch.zeros_like(t) for t in cur]
    v = [torch.zeros_like(t) for t in cur]
    b1, b2 = cfg.adam_betas

    def harmful_logits(tensors, inputs):
        w = dict(zip(names, tensors, strict=True))
        f = feature_fn({**params, **w}, inputs)
        return f @ w["hw"].T + w["hb"]

    all_logits = [harmful_logits(cur, outer.inputs)]
    norms = []
    for t, batch in enumerate(inner, start=1):
        loss = F.cross_entropy(harmful_logits(cur, batch.inputs), batch.harmful)
        grads = list(torch.autograd.grad(loss, cur, create_graph=True, allow_unused=True))
        grads = [torch.zeros_like(c) if g is None else g for g, c in zip(grads, cur, strict=True)]
        if detach_inner_grads:
            grads = [g.detach() for g in grads]
        sq = sum((g * g).sum() for g in grads)
        norm = torch.sqrt(sq + torch.finfo(sq.dtype).tiny)
        norms.append(norm)
        scale = torch.clamp(cfg.inner_grad_clip / (norm + 1e-6), max=1.0)
        grads = [g * scale for g in grads]
        new = []
        for i, (p, g) in enumerate(zip(cur, grads, strict=True)):
            if cfg.inner_optimizer == "sgd":
                new.append(p - lr * g)
                continue
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mhat = m[i] / (1 - b1**t)
            vhat = v[i] / (1 - b2**t)
            new.append(p - lr * mhat / torch.sqrt(vhat + cfg.adam_eps))
        cur = new
        all_logits.append(harmful_logits(cur, outer.inputs))

    advs = []
    for logits in all_logits:
        if cfg.adv_loss == "remap":
            w_star = solve_remap(logits, outer.harmful, cfg.remap_steps)
            advs.append(F.cross_entropy(logits @ w_star, outer.harmful))
        else:
            ce = F.cross_entropy(logits, outer.harmful)
            advs.append(ce / (1 + ce / (2 * math.log(logits.shape[-1]))))
    total = ben_ce - cfg.w_adv * torch.stack(advs).mean()
    if cfg.w_grad_norm > 0:
        total = total + cfg.w_grad_norm * torch.stack(norms).mean()
    if cfg.w_max_entropy > 0:
        ents = [-(torch.softmax(lg, -1) * torch.log_softmax(lg, -1)).sum(-1).mean() for lg in all_logits]
        total = total - cfg.w_max_entropy * torch.stack(ents).mean()
    return total


# ----------------------------------------------------------------------------------------------------
# Small MLP
# ----------------------------------------------------------------------------------------------------

def _mlp_setup(mlp_factory, k: int, seed: int = 0):
    torch.manual_seed(seed)
    model = mlp_factory().double()
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(seed + 1)
    head = {
        "weight": (torch.randn(2, 5, generator=gen, dtype=torch.float64) * 0.4).requires_grad_(True),
        "bias": (torch.randn(2, generator=gen, dtype=torch.float64) * 0.1).requires_grad_(True),
    }

    def batch(n: int, with_ben: bool) -> Batch:
        x = torch.randn(n, 6, generator=gen, dtype=torch.float64)
        harm = torch.randint(0, 2, (n,), generator=gen)
        ben = torch.randint(0, 3, (n,), generator=gen) if with_ben else None
        return Batch({"x": x}, harm, ben)

    outer = batch(10, True)
    inner = [batch(8, False) for _ in range(k)]
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    return model, params, head, lr, outer, inner


def _grads(total, params, head, lr):
    inputs = [*params.values(), head["weight"], head["bias"], lr]
    return list(torch.autograd.grad(total, inputs, allow_unused=True, materialize_grads=True))


@pytest.mark.parametrize(
    "changes",
    [
        {"inner_optimizer": "adam"},
        {"inner_optimizer": "sgd"},
        {"inner_optimizer": "adam", "adv_loss": "neg_ce", "w_grad_norm": 0.3, "w_max_entropy": 0.2},
        {"inner_optimizer": "adam", "inner_grad_clip": 0.05},  # clipping active
    ],
    ids=["adam", "sgd", "adam-all-terms", "adam-clipped"],
)
def test_mlp_second_order_matches_naive_float64_reference(mlp_factory, changes):
    cfg = MLACConfig(inner_steps=3, w_adv=0.7, **changes)
    model, params, head, lr, outer, inner = _mlp_setup(mlp_factory, cfg.inner_steps)
    ours = _grads(outer_objective(model, params, {}, head, lr, outer, inner, cfg).total, params, head, lr)

    def feature_fn(w, inputs):
        return _mlp_features(w, inputs["x"])

    ref = _grads(_reference_total(feature_fn, params, head, lr, outer, inner, cfg), params, head, lr)
    err = _rel_err(ours, ref)
    print("rel_err", err)
    assert err < REL_TOL
    # Second-order terms are really there: they differ from the first-order gradient.
    first = _grads(
        outer_objective(model, params, {}, head, lr, outer, inner, cfg.replace(second_order=False, w_grad_norm=0.0)).total,
        params, head, lr,
    )
    ref_same_terms = ref if cfg.w_grad_norm == 0 else _grads(
        _reference_total(feature_fn, params, head, lr, outer, inner, cfg.replace(w_grad_norm=0.0)), params, head, lr
    )
    assert _rel_err(first, ref_same_terms) > 1e-4


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mlp_first_order_equals_stop_gradient_variant(mlp_factory, optimizer):
    cfg = MLACConfig(inner_steps=3, inner_optimizer=optimizer, second_order=False, w_adv=0.7)
    model, params, head, lr, outer, inner = _mlp_setup(mlp_factory, cfg.inner_steps, seed=3)
    ours = _grads(outer_objective(model, params, {}, head, lr, outer, inner, cfg).total, params, head, lr)

    def feature_fn(w, inputs):
        return _mlp_features(w, inputs["x"])

    ref = _grads(
        _reference_total(feature_fn, params, head, lr, outer, inner, cfg, detach_inner_grads=True), params, head, lr
    )
    err = _rel_err(ours, ref)
    print("rel_err", err)
    assert err < REL_TOL


def test_mlp_outer_gradient_matches_finite_differences(mlp_factory):
    """A directional derivative by central differences: independent of any autograd bookkeeping."""
    cfg = MLACConfig(inner_steps=3, adv_loss="remap", remap_steps=400, w_adv=0.7, w_max_entropy=0.1)
    model, params, head, lr, outer, inner = _mlp_setup(mlp_factory, cfg.inner_steps, seed=5)
    inputs = [*params.values(), head["weight"], head["bias"], lr]
    grads = _grads(outer_objective(model, params, {}, head, lr, outer, inner, cfg).total, params, head, lr)
    gen = torch.Generator().manual_seed(9)
    direction = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in inputs]
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction, strict=True))

    def value(eps: float) -> float:
        moved = [(t + eps * d).detach() for t, d in zip(inputs, direction, strict=True)]
        p = dict(zip(params, moved[: len(params)], strict=True))
        h = {"weight": moved[-3], "bias": moved[-2]}
        with torch.enable_grad():
            p = {k: v.requires_grad_(True) for k, v in p.items()}
            h = {k: v.requires_grad_(True) for k, v in h.items()}
            return float(outer_objective(model, p, {}, h, moved[-1], outer, inner, cfg).total.detach())

    eps = 1e-5
    numeric = (value(eps) - value(-eps)) / (2 * eps)
    print("fd", numeric, analytic)
    assert abs(numeric - analytic) < 1e-6 * max(1.0, abs(analytic))


# ----------------------------------------------------------------------------------------------------
# Tiny BERT (the paper's shape), float64, dropout off
# ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_bert():
    from mlac.models import build_tiny_bert

    model, tok = build_tiny_bert(num_beneficial=4, seed=0, dropout=0.0)
    model = model.double().eval()
    texts = [
        "they worked as a nurse in a busy hospital for ten years",
        "their spouse is a teacher and they code software",
        "a lawyer who argued many cases",
        "they paint portraits and landscapes",
        "the surgeon operated at night",
        "their husband runs a bakery",
    ]
    enc = tok(texts, padding=True, truncation=True, max_length=24, return_tensors="pt")
    return model, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _bert_setup(tiny_bert, k: int):
    model, enc = tiny_bert
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    gen = torch.Generator().manual_seed(11)
    head = {
        "weight": (torch.randn(2, model.hidden_size, generator=gen, dtype=torch.float64) * 0.1).requires_grad_(True),
        "bias": torch.zeros(2, dtype=torch.float64, requires_grad=True),
    }

    def rows(idx: list[int], ben: bool) -> Batch:
        inputs = {k: v[idx] for k, v in enc.items()}
        harm = torch.tensor([i % 2 for i in idx])
        return Batch(inputs, harm, torch.tensor([i % 4 for i in idx]) if ben else None)

    outer = rows([0, 1, 2, 3], True)
    inner = [rows([(2 * s + j) % 6 for j in range(3)], False) for s in range(k)]
    lr = torch.tensor(1e-3, dtype=torch.float64, requires_grad=True)
    return model, params, buffers, head, lr, outer, inner


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_tiny_bert_second_order_matches_naive_float64_reference(tiny_bert, optimizer):
    from torch.func import functional_call

    cfg = MLACConfig(inner_steps=2, inner_optimizer=optimizer, w_adv=1.0, inner_lr=1e-3)
    model, params, buffers, head, lr, outer, inner = _bert_setup(tiny_bert, cfg.inner_steps)
    # The batches use a few dozen of 30,522 token ids: outer_objective adapts only those embedding rows,
    # and the dense float64 reference below checks that this is exact.
    assert embedding_rows(model, params, [outer, *inner]) is not None
    ours = _grads(outer_objective(model, params, buffers, head, lr, outer, inner, cfg).total, params, head, lr)

    def feature_fn(w, inputs):
        return functional_call(model, {**buffers, **w}, args=(inputs["input_ids"], inputs["attention_mask"]))

    ref = _grads(_reference_total(feature_fn, params, head, lr, outer, inner, cfg), params, head, lr)
    err = _rel_err(ours, ref)
    print("rel_err", err)
    assert err < REL_TOL
    # Embedding rows of tokens absent from every batch get zero gradient and stay finite (eps inside sqrt).
    assert all(torch.isfinite(g).all() for g in ours)


def test_tiny_bert_first_order_equals_stop_gradient_variant(tiny_bert):
    from torch.func import functional_call

    cfg = MLACConfig(inner_steps=2, second_order=False, w_adv=1.0, inner_lr=1e-3)
    model, params, buffers, head, lr, outer, inner = _bert_setup(tiny_bert, cfg.inner_steps)
    ours = _grads(outer_objective(model, params, buffers, head, lr, outer, inner, cfg).total, params, head, lr)

    def feature_fn(w, inputs):
        return functional_call(model, {**buffers, **w}, args=(inputs["input_ids"], inputs["attention_mask"]))

    ref = _grads(
        _reference_total(feature_fn, params, head, lr, outer, inner, cfg, detach_inner_grads=True), params, head, lr
    )
    err = _rel_err(ours, ref)
    print("rel_err", err)
    assert err < REL_TOL
