"""The MLAC outer objective as a pure function of explicit parameters, batches, head and learning rate.

One call unrolls the simulated attacker: from the current weights plus a harmful head it runs K
differentiable optimiser steps on the harmful loss over the whole model (trunk + head), records the
harmful logits of the outer batch after each of the steps 0..K, and returns the defender's objective.
The model is only ever evaluated through :func:`torch.func.functional_call`; nothing is mutated, so
``torch.autograd.grad`` of the result reaches the starting weights through every inner update
(second order) or, in first-order mode, through the identity path only (inner gradients detached).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from mlac.censor.config import MLACConfig
from mlac.censor.inner_optim import Params, clip_by_global_norm, make_inner_optimizer
from mlac.censor.losses import adversarial_values, mean_entropy
from mlac.data.encoded import Batch

BENEFICIAL_PREFIX = "beneficial_head."


@dataclass
class OuterTerms:
    """What one unrolled outer step computed (all tensors still attached to the graph)."""

    total: torch.Tensor
    beneficial_ce: torch.Tensor
    adv_per_step: torch.Tensor  # [K+1]
    harmful_ce_per_step: torch.Tensor  # [K+1], plain CE of the outer batch (monitoring, detached)
    adapted_ce: torch.Tensor  # plain CE of the outer batch after the K steps (attached: the reference adversary's loss)
    grad_norms: torch.Tensor  # [K] (empty when K = 0)
    entropy_per_step: torch.Tensor  # [K+1]
    final_logits: torch.Tensor  # [N, C] harmful logits after K steps (detached)
    beneficial_logits: torch.Tensor  # [N, C_ben] of the un-adapted model (detached)


def trunk_names(params: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the parameters the attacker adapts besides its own head (all but the beneficial head)."""
    return [k for k in params if not k.startswith(BENEFICIAL_PREFIX)]


def features(model: nn.Module, weights: Mapping[str, torch.Tensor], inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Pooled features ``[B, H]`` of ``model`` evaluated with ``weights`` (parameters and buffers)."""
    out: torch.Tensor = functional_call(model, dict(weights), args=(), kwargs=dict(inputs), strict=False)
    return out


def head_logits(feats: torch.Tensor, head: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A linear head ``{'weight', 'bias'}`` applied to features."""
    return F.linear(feats, head["weight"], head["bias"])


def outer_objective(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    head: Mapping[str, torch.Tensor],
    lr: torch.Tensor | float,
    outer: Batch,
    inner: Sequence[Batch],
    cfg: MLACConfig,
) -> OuterTerms:
    """The defender's objective for one outer step (PROTOCOL.md, steps 2 to 4).

    ``params``: every parameter of ``model`` by name (the beneficial head under ``beneficial_head.``);
    ``head``: the harmful head's starting ``weight``/``bias``; ``inner``: the K inner batches; ``lr``: the
    inner learning rate (a tensor that requires grad when the adversary learns it).
    """
    if len(inner) != cfg.inner_steps:
        raise ValueError(f"got {len(inner)} inner batches for inner_steps={cfg.inner_steps}")
    if outer.beneficial is None:
        raise ValueError("the outer batch needs beneficial labels")
    fixed = {**buffers, **{k: v for k, v in params.items() if k.startswith(BENEFICIAL_PREFIX)}}
    opt = make_inner_optimizer(cfg.inner_optimizer, cfg.adam_betas, cfg.adam_eps)

    outer_feats = features(model, {**fixed, **params}, outer.inputs)
    ben_logits = head_logits(outer_feats, _prefixed(params, BENEFICIAL_PREFIX))
    beneficial_ce = F.cross_entropy(ben_logits, outer.beneficial)

    fast: Params = {k: params[k] for k in trunk_names(params)}
    rows = embedding_rows(model, params, [outer, *inner])
    if rows is not None:  # adapt only the embedding rows these batches use (exact; see embedding_rows)
        emb_key, used = rows
        fast[emb_key] = params[emb_key].index_select(0, used)
        outer_in = _remap_ids(outer.inputs, used)
        inner = [Batch(_remap_ids(b.inputs, used), b.harmful, b.beneficial) for b in inner]
    else:
        outer_in = outer.inputs
    # A fresh head is a constant for the defender, but the attacker differentiates through it.
    fast.update({f"__head__.{k}": (v if v.requires_grad else v.detach().requires_grad_(True)) for k, v in head.items()})
    state = opt.init(fast)
    logits = [head_logits(outer_feats, head)]
    grad_norms: list[torch.Tensor] = []
    for batch in inner:
        feats = features(model, {**fixed, **_trunk(fast)}, batch.inputs)
        loss = F.cross_entropy(head_logits(feats, _prefixed(fast, "__head__.")), batch.harmful)
        names = list(fast)
        raw = torch.autograd.grad(loss, [fast[k] for k in names], create_graph=cfg.second_order, allow_unused=True)
        grads = {k: (g if g is not None else torch.zeros_like(fast[k])) for k, g in zip(names, raw, strict=True)}
        clipped, norm = clip_by_global_norm(grads, cfg.inner_grad_clip)
        grad_norms.append(norm)
        fast, state = opt.update(clipped, state, fast, lr)
        logits.append(head_logits(features(model, {**fixed, **_trunk(fast)}, outer_in), _prefixed(fast, "__head__.")))

    stacked = torch.stack(logits)  # [K+1, N, C]
    adv = adversarial_values(stacked, outer.harmful, cfg.adv_loss, cfg.remap_steps)
    entropy = mean_entropy(stacked)
    with torch.no_grad():
        s, n, c = stacked.shape
        harmful_ce = F.cross_entropy(stacked.reshape(s * n, c), outer.harmful.repeat(s), reduction="none").view(s, n).mean(-1)
    norms = torch.stack(grad_norms) if grad_norms else stacked.new_zeros(0)
    total = beneficial_ce - cfg.w_adv * adv.mean()
    if cfg.w_grad_norm > 0:
        total = total + cfg.w_grad_norm * norms.mean()
    if cfg.w_max_entropy > 0:
        total = total - cfg.w_max_entropy * entropy.mean()
    return OuterTerms(
        total, beneficial_ce, adv, harmful_ce, F.cross_entropy(stacked[-1], outer.harmful), norms, entropy,
        stacked[-1].detach(), ben_logits.detach(),
    )


WORD_EMBEDDINGS_SUFFIX = "word_embeddings.weight"


def embedding_rows(model: nn.Module, params: Mapping[str, torch.Tensor],
                   batches: Sequence[Batch]) -> tuple[str, torch.Tensor] | None:
    """The word-embedding parameter's name and the sorted token ids the batches use, when worth restricting.

    The simulated attacker's inner optimiser only ever changes embedding rows that some inner batch looks
    up (a row with zero gradient keeps zero Adam moments and does not move), and the outer batch reads only
    its own rows, so adapting the gathered rows ``W[used]`` with remapped ids gives the same logits and the
    same outer gradient as adapting all of ``W``, at a fraction of the cost (the vocabulary is most of a
    small BERT's parameters). The padding row (id 0) is always included, so that the embedding's
    ``padding_idx`` 0 still names it. None (use the dense path) when the model has no single word
    embedding, its padding index is not None or 0, or the batches use most of the vocabulary anyway.
    """
    keys = [k for k in params if k.endswith(WORD_EMBEDDINGS_SUFFIX)]
    if len(keys) != 1 or any("input_ids" not in b.inputs for b in batches):
        return None
    module = model.get_submodule(keys[0][: -len(".weight")])
    if getattr(module, "padding_idx", None) not in (None, 0):
        return None
    weight = params[keys[0]]
    ids = torch.cat([b.inputs["input_ids"].reshape(-1) for b in batches] + [weight.new_zeros(1, dtype=torch.long)])
    used = torch.unique(ids)
    if used.numel() > 0.9 * weight.shape[0]:
        return None
    return keys[0], used


def _remap_ids(inputs: Mapping[str, torch.Tensor], used: torch.Tensor) -> dict[str, torch.Tensor]:
    """``inputs`` with each token id replaced by its position in the sorted ``used`` ids."""
    return {**inputs, "input_ids": torch.searchsorted(used, inputs["input_ids"])}


def _prefixed(params: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def _trunk(fast: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in fast.items() if not k.startswith("__head__.")}
