"""A small "pre-trained" base model for tests and the demo: tiny BERT trained briefly on both labels.

No hub is reachable, so the base model that MLAC censors is made here: a BERT-tiny-shaped encoder
trained for a few hundred steps on the beneficial *and* the harmful label, so that its features carry
the harmful information (as a real pre-trained encoder's would) before censoring. The harmful head is
discarded; only the trunk and the beneficial head are kept.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.data.encoded import EncodedSplit
from mlac.errors import ConfigError
from mlac.models import EncoderClassifier, build_tiny_bert, make_head


def make_base_model(
    train: EncodedSplit,
    tokenizer: PreTrainedTokenizerBase,
    *,
    num_beneficial: int,
    num_harmful: int = 2,
    steps: int = 300,
    lr: float = 1e-3,
    batch_size: int = 32,
    harmful_weight: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: Callable[[int, float], None] | None = None,
) -> EncoderClassifier:
    """Train a fresh tiny BERT on ``CE_beneficial + harmful_weight * CE_harmful`` for ``steps`` Adam steps.

    Deterministic on CPU for a given ``seed`` (model init, batches and dropout all seeded).
    """
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError("make_base_model needs steps >= 1, batch_size >= 1 and lr > 0")
    model, _ = build_tiny_bert(num_beneficial, seed, tokenizer=tokenizer)
    model = model.to(device)
    harmful_head = make_head(model.hidden_size, num_harmful, seed + 7, device=device)
    params = [*model.parameters(), *harmful_head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(steps):
            rows = torch.randint(0, len(train), (batch_size,), generator=gen).tolist()
            batch = train.batch(rows, device)
            feats = model(**batch.inputs)
            assert batch.beneficial is not None
            loss = F.cross_entropy(model.beneficial_head(feats), batch.beneficial)
            loss = loss + harmful_weight * F.cross_entropy(harmful_head(feats), batch.harmful)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if progress is not None:
                progress(step + 1, float(loss.detach()))
    model.eval()
    return model
