"""A pure BERT forward for batched trials: N members' weights stacked, one ``torch.func.vmap`` call.

:func:`padded_features` is :mod:`mlac.models.packed`'s forward (the serial ``full``/``lora`` attacks train
through it) written with tensor ops only, on a right-padded batch, reading every weight from a mapping
named as ``model.named_parameters()`` names them (``"trunk.embeddings.word_embeddings.weight"``, ...). No
module with weights is called (the activation is transformers' parameterless ``ACT2FN`` one), nothing is
drawn and nothing is written in place, so ``vmap`` over a leading member dimension of the weights, ids,
masks, dropout masks and LoRA adapters computes each member's function (no vmap fallback loops either).

Dropout is an input: :func:`draw_dropout_masks` draws, from one member's own generator, exactly the masks
that ``packed_hidden`` in train mode draws from the global RNG on that member's batch (same order, packed
shapes, dtype and ops as torch's CPU dropout: ``empty(shape).bernoulli_(1 - p).div_(1 - p)``, nothing drawn
where ``p`` is 0 or 1), and scatters them into a padded layout of a common width. A member's dropout thus
depends on its own seed and batch only, never on how many members share the group nor on their lengths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers.activations import ACT2FN

from mlac.errors import ConfigError
from mlac.models.encoder import EncoderClassifier, pool
from mlac.models.packed import supports_packed

#: Prefix of the trunk's weights in ``EncoderClassifier.named_parameters()``.
TRUNK = "trunk."


@dataclass(frozen=True)
class BertShape:
    """What the pure forward needs besides weights: the trunk's sizes, activation, dropout and pooling.

    ``hidden_dropout`` is the p of the embedding, attention-output and feed-forward-output dropouts,
    ``attention_dropout`` that of the attention probabilities (as the trunk's modules hold them).
    """

    layers: int
    heads: int
    head_size: int
    hidden: int
    eps: float
    activation: str
    hidden_dropout: float
    attention_dropout: float
    pooling: str
    scaling: float


def bert_shape(model: EncoderClassifier) -> BertShape:
    """The :class:`BertShape` of ``model``; ConfigError unless its trunk is a plain packable ``BertModel``
    (a peft-wrapped trunk names its weights differently) with a string activation and one dropout p per site."""
    from transformers.models.bert.modeling_bert import BertModel

    if not isinstance(model.trunk, BertModel) or not supports_packed(model.trunk):
        raise ConfigError("the stacked forward needs an encoder-only BertModel trunk with absolute positions "
                          f"(not wrapped), got {type(model.trunk).__name__}")
    trunk: Any = model.trunk  # submodules typed as nn.Module | Tensor by torch's __getattr__
    config = trunk.config
    if not isinstance(config.hidden_act, str) or config.hidden_act not in ACT2FN:
        raise ConfigError(f"the stacked forward needs a named activation, got {config.hidden_act!r}")
    attn = trunk.encoder.layer[0].attention.self
    hidden_p = float(trunk.embeddings.dropout.p)
    attention_p = float(attn.dropout.p)
    for layer in trunk.encoder.layer:
        hidden_ps = {float(layer.attention.output.dropout.p), float(layer.output.dropout.p)}
        if hidden_ps != {hidden_p} or float(layer.attention.self.dropout.p) != attention_p:
            raise ConfigError("the stacked forward needs one hidden and one attention dropout p for all layers")
    return BertShape(
        layers=len(trunk.encoder.layer), heads=int(attn.num_attention_heads), head_size=int(attn.attention_head_size),
        hidden=int(config.hidden_size), eps=float(config.layer_norm_eps), activation=config.hidden_act,
        hidden_dropout=hidden_p, attention_dropout=attention_p, pooling=model.pooling, scaling=float(attn.scaling),
    )


class LayerDropoutMasks(NamedTuple):
    """One layer's dropout masks in forward order."""

    attention: Tensor  #: attention probabilities ``[B, heads, W, W]``
    attention_output: Tensor  #: after the attention output projection ``[B, W, H]``
    output: Tensor  #: after the feed-forward output projection ``[B, W, H]``


class DropoutMasks(NamedTuple):
    """Every dropout mask of one forward, in forward order: values 0 or ``1 / (1 - p)``, zeros at padding;
    a 0-dim one at a site whose p is 0 (nothing drawn there; multiplying by it is exact).

    A NamedTuple of tensors so that it is a pytree of tensors only: ``vmap`` with ``in_dims=0`` maps over
    every leaf's member dimension (it refuses a None leaf, hence the 0-dim ones rather than None).
    """

    embeddings: Tensor  #: after the embedding LayerNorm ``[B, W, H]``
    layers: tuple[LayerDropoutMasks, ...]


def _noise(shape: Sequence[int], p: float, generator: torch.Generator, dtype: torch.dtype) -> Tensor | None:
    """Torch's CPU dropout noise for an input of ``shape``: None where dropout draws nothing (p == 0),
    zeros without a draw where p == 1, else ``empty(shape).bernoulli_(1 - p).div_(1 - p)`` (ATen's
    ``_dropout_impl``; same draws, since ``bernoulli_`` consumes the generator by dtype and numel)."""
    if p == 0.0:  # ATen returns the input untouched (as in eval mode): no draw
        return None
    if p == 1.0:
        return torch.zeros(tuple(shape), dtype=dtype, device=generator.device)
    return torch.empty(tuple(shape), dtype=dtype, device=generator.device).bernoulli_(1.0 - p, generator=generator).div_(1.0 - p)


def draw_dropout_masks(shape: BertShape, attention_mask: Tensor, width: int, generator: torch.Generator,
                       dtype: torch.dtype, device: torch.device | str | None = None) -> DropoutMasks:
    """The masks ``packed_hidden`` draws in train mode on a batch with ``attention_mask`` ``[B, L]`` (the
    member's own, right padded), drawn from ``generator`` as that forward draws them from the global RNG
    (so a generator seeded like the RNG ends in the RNG's state), then laid out at ``width >= L``.

    Drawn on the generator's device (a CPU generator reproduces the serial CPU path on any ``device``) and
    moved to ``device`` (default: the generator's). Padding gets zeros: padded tokens' hidden-state masks and the attention masks
    outside the ``[L, L]`` block (those columns multiply probabilities that are exactly 0).
    """
    batch, length = attention_mask.shape
    if width < length:
        raise ConfigError(f"the padded width {width} is below the batch's width {length}")
    target = generator.device if device is None else torch.device(device)
    keep = attention_mask.to(generator.device).bool()
    tokens = int(keep.sum())
    hidden_rows = torch.zeros(batch, width, dtype=torch.bool, device=generator.device)
    hidden_rows[:, :length] = keep

    def hidden_site() -> Tensor:
        packed = _noise((tokens, shape.hidden), shape.hidden_dropout, generator, dtype)
        if packed is None:
            return torch.ones((), dtype=dtype, device=target)
        full = torch.zeros(batch, width, shape.hidden, dtype=dtype, device=generator.device)
        full[hidden_rows] = packed
        return full.to(target)

    def attention_site() -> Tensor:
        drawn = _noise((batch, shape.heads, length, length), shape.attention_dropout, generator, dtype)
        if drawn is None:
            return torch.ones((), dtype=dtype, device=target)
        full = torch.zeros(batch, shape.heads, width, width, dtype=dtype, device=generator.device)
        full[:, :, :length, :length] = drawn
        return full.to(target)

    embeddings = hidden_site()
    layers = []
    for _ in range(shape.layers):
        attention = attention_site()
        attention_output = hidden_site()
        layers.append(LayerDropoutMasks(attention, attention_output, hidden_site()))
    return DropoutMasks(embeddings, tuple(layers))


def stack_dropout_masks(members: Sequence[DropoutMasks]) -> DropoutMasks:
    """The members' masks (all of one shape and width) stacked along a new leading member dimension."""
    if not members:
        raise ConfigError("stacking dropout masks needs at least one member")
    layers = tuple(LayerDropoutMasks(*(torch.stack([m.layers[i][j] for m in members]) for j in range(3)))
                   for i in range(len(members[0].layers)))
    return DropoutMasks(torch.stack([m.embeddings for m in members]), layers)


def stack_weights(members: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Per-member weight (or adapter) dicts with the same names -> one dict of ``[N, ...]`` tensors."""
    if not members:
        raise ConfigError("stacking weights needs at least one member")
    names = list(members[0])
    if any(set(m) != set(names) for m in members):
        raise ConfigError("stacked members must have the same weight names")
    return {n: torch.stack([m[n] for m in members]) for n in names}


def unstack_weights(stacked: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
    """Inverse of :func:`stack_weights`: one dict of views per member."""
    sizes = {t.shape[0] for t in stacked.values()}
    if len(sizes) != 1:
        raise ConfigError(f"stacked weights disagree on the member count: {sorted(sizes)}")
    return [{n: t[i] for n, t in stacked.items()} for i in range(sizes.pop())]


def padded_hidden(shape: BertShape, weights: Mapping[str, Tensor], input_ids: Tensor, attention_mask: Tensor, *,
                  masks: DropoutMasks | None = None, adapters: Mapping[str, Tensor] | None = None,
                  lora_scaling: float = 2.0, word_embeds: Tensor | None = None) -> Tensor:
    """Last hidden states ``[B, W, H]`` of a right-padded batch (real tokens as ``packed_hidden``'s; padded
    positions hold finite values that no real token reads). ``masks=None``: no dropout (eval mode).
    ``word_embeds``: the rows of the word-embedding table for ``input_ids``, looked up by the caller (under
    ``vmap`` a lookup in a batched table differentiates into a dense one-hot product over the vocabulary;
    indexing the stacked table outside ``vmap`` keeps its backward a scatter)."""
    batch, width = input_ids.shape
    act = ACT2FN[shape.activation]

    def w(name: str) -> Tensor:
        return weights[TRUNK + name]

    def linear(x: Tensor, module: str) -> Tensor:
        out = F.linear(x, w(module + ".weight"), w(module + ".bias"))
        if adapters is not None:  # as the LoRA forward hook adds it
            a, b = adapters[f"{TRUNK}{module}.lora_A"], adapters[f"{TRUNK}{module}.lora_B"]
            out = out + F.linear(F.linear(x, a), b) * lora_scaling
        return out

    def norm(x: Tensor, module: str) -> Tensor:
        return F.layer_norm(x, (shape.hidden,), w(module + ".weight"), w(module + ".bias"), shape.eps)

    def dropped(x: Tensor, mask: Tensor | None) -> Tensor:
        return x if mask is None else x * mask  # a site without dropout has a 0-dim one: exact

    def heads(x: Tensor) -> Tensor:
        return x.reshape(batch, width, shape.heads, shape.head_size).transpose(1, 2)

    # Token type 0 everywhere and positions 0.. in every row (right padding), as packed_hidden adds them.
    words = F.embedding(input_ids, w("embeddings.word_embeddings.weight")) if word_embeds is None else word_embeds
    hidden = words + w("embeddings.token_type_embeddings.weight")[0]
    hidden = norm(hidden + w("embeddings.position_embeddings.weight")[:width], "embeddings.LayerNorm")
    hidden = dropped(hidden, None if masks is None else masks.embeddings)
    bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for i in range(shape.layers):
        layer = f"encoder.layer.{i}."
        drop = None if masks is None else masks.layers[i]
        q, k, v = (heads(linear(hidden, layer + "attention.self." + n)) for n in ("query", "key", "value"))
        probs = F.softmax(torch.matmul(q, k.transpose(2, 3)) * shape.scaling + bias, dim=-1)
        probs = dropped(probs, None if drop is None else drop.attention)
        context = torch.matmul(probs, v).transpose(1, 2).reshape(batch, width, shape.hidden)
        attended = dropped(linear(context, layer + "attention.output.dense"), None if drop is None else drop.attention_output)
        attended = norm(attended + hidden, layer + "attention.output.LayerNorm")
        out = linear(act(linear(attended, layer + "intermediate.dense")), layer + "output.dense")
        hidden = norm(dropped(out, None if drop is None else drop.output) + attended, layer + "output.LayerNorm")
    return hidden


def padded_features(shape: BertShape, weights: Mapping[str, Tensor], input_ids: Tensor, attention_mask: Tensor, *,
                    masks: DropoutMasks | None = None, adapters: Mapping[str, Tensor] | None = None,
                    lora_scaling: float = 2.0, word_embeds: Tensor | None = None) -> Tensor:
    """Pooled features ``[B, H]`` of a right-padded batch, as ``EncoderClassifier.features(packed=True)``
    computes them with these weights (and these adapters, dropout masks); see :func:`padded_hidden`."""
    hidden = padded_hidden(shape, weights, input_ids, attention_mask, masks=masks, adapters=adapters,
                           lora_scaling=lora_scaling, word_embeds=word_embeds)
    return pool(hidden, attention_mask, shape.pooling)
