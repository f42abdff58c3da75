"""Packed ("unpadded") forward of a BERT trunk: token-wise layers run on real tokens only.

A padded batch makes every row pay for the longest one: on the synthetic bios a random batch of 48 is
~40% padding, and everything but the attention scores (embeddings, the Q/K/V/output projections, the
feed-forward block, layer norms, dropout) works token by token. This forward packs the batch's real tokens
into one ``[tokens, hidden]`` matrix for those layers and pads back only around the attention product
(the padded keys are masked exactly as the eager attention masks them). It calls the trunk's own
submodules, so LoRA adapters on its linear layers (forward hooks, or peft's wrapped layers) are used as they are.

Same function as ``trunk(input_ids, attention_mask).last_hidden_state`` on the real tokens (to float
rounding; dropout masks are drawn in another order); padded positions come back as zeros. Only for
encoder-only BERT models with absolute positions (the tiny BERT, MiniLM): :func:`supports_packed` says
when it applies, and callers fall back to the plain forward otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _bert(trunk: nn.Module) -> Any:
    """The BertModel inside ``trunk`` (itself, or the base model of a peft wrapper), else None."""
    from transformers.models.bert.modeling_bert import BertModel

    unwrap = getattr(trunk, "get_base_model", None)
    inner = unwrap() if callable(unwrap) else trunk
    return inner if isinstance(inner, BertModel) else None


def supports_packed(trunk: nn.Module) -> bool:
    """Whether :func:`packed_hidden` computes the same function as ``trunk``'s own forward."""
    bert = _bert(trunk)
    if bert is None:
        return False
    config = bert.config
    return (not config.is_decoder and not getattr(config, "add_cross_attention", False)
            and getattr(config, "position_embedding_type", "absolute") in (None, "absolute"))


def packed_hidden(trunk: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states ``[B, L, H]`` of a padded batch, computed on its real tokens (zeros at padding).

    Real tokens are the positions where ``attention_mask`` is 1; each row's real tokens must come first
    (right padding, as :meth:`~mlac.data.encoded.EncodedSplit.batch` builds batches), because position
    ids count from the row's start.
    """
    bert = _bert(trunk)
    if bert is None or not supports_packed(trunk):
        raise ValueError("packed_hidden needs an encoder-only BERT trunk with absolute positions")
    batch, width = input_ids.shape
    keep = attention_mask.bool()
    where = keep.flatten().nonzero().squeeze(1)  # packed token -> flat padded position
    positions = torch.arange(width, device=input_ids.device).expand(batch, width)[keep]
    ids = input_ids[keep]
    emb = bert.embeddings
    hidden = emb.word_embeddings(ids) + emb.token_type_embeddings(torch.zeros_like(ids))
    hidden = emb.dropout(emb.LayerNorm(hidden + emb.position_embeddings(positions)))
    # Additive key mask as the eager attention gets it: the dtype's minimum at padded keys, 0 elsewhere.
    bias = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min

    def padded_heads(x: torch.Tensor, heads: int, size: int) -> torch.Tensor:
        full = x.new_zeros(batch * width, x.shape[-1]).index_copy(0, where, x)
        return full.view(batch, width, heads, size).transpose(1, 2)

    for layer in bert.encoder.layer:
        attn = layer.attention.self
        heads, size = attn.num_attention_heads, attn.attention_head_size
        q = padded_heads(attn.query(hidden), heads, size)
        k = padded_heads(attn.key(hidden), heads, size)
        v = padded_heads(attn.value(hidden), heads, size)
        weights = F.softmax(torch.matmul(q, k.transpose(2, 3)) * attn.scaling + bias, dim=-1)
        weights = F.dropout(weights, p=attn.dropout.p, training=attn.training)
        context = torch.matmul(weights, v).transpose(1, 2).reshape(batch * width, heads * size)[where]
        attended = layer.attention.output(context, hidden)
        hidden = layer.output(layer.intermediate(attended), attended)
    out = hidden.new_zeros(batch * width, hidden.shape[-1]).index_copy(0, where, hidden)
    return out.view(batch, width, -1)
