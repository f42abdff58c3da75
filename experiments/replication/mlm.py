"""The CPU-scale "pre-trained" base: a BERT-tiny-shaped encoder trained with masked-language modelling.

The analogue of BERT's pre-training: a :class:`transformers.BertForMaskedLM` built from the tiny config
of :func:`mlac.models.build_tiny_bert` is trained on an unlabelled synthetic corpus (the generator's
raw bios, pronouns included, as web text has them; no label column is ever read), then its encoder
weights are copied into the project's :class:`~mlac.models.EncoderClassifier` trunk. Masking is the
BERT recipe (15% of non-special tokens; 80% [MASK], 10% random, 10% kept) and the vocabulary
projection is computed on the masked positions only (the full 30,522-way softmax over every position
would dominate the CPU time), restricted to the token ids that occur in the corpus (the only possible
targets; the softmax is normalised over them). The decoder weight is tied to the word embeddings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.data.scrub import scrub_pronouns
from mlac.data.synth import SynthConfig, raw_bios
from mlac.models import EncoderClassifier, build_tiny_bert


def raw_corpus(config: SynthConfig) -> list[str]:
    """``config.n_bios`` unscrubbed bios (pronouns kept) drawn by the project's generator; no labels kept.

    Uses the generator's own per-bio routine so that names, places and phrasing are exactly those of
    the labelled datasets with the same ``vocab_seed``.
    """
    return [text for text, _, _ in raw_bios(config)]


def scrubbed(texts: Sequence[str]) -> list[str]:
    """The same corpus with pronouns scrubbed (an ablation: gender then lives only in names and nouns)."""
    return [scrub_pronouns(t) for t in texts]


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_ids: torch.Tensor,
                gen: torch.Generator, rate: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of ``ids`` [B, L] (random replacements drawn from ``vocab_ids``); returns (corrupted ids,
    boolean mask of the positions to predict)."""
    probs = torch.rand(ids.shape, generator=gen)
    chosen = (probs < rate) & ~special
    action = torch.rand(ids.shape, generator=gen)
    corrupted = ids.clone()
    corrupted[chosen & (action < 0.8)] = mask_id
    rand_pos = chosen & (action >= 0.8) & (action < 0.9)
    corrupted[rand_pos] = vocab_ids[torch.randint(0, len(vocab_ids), (int(rand_pos.sum()),), generator=gen)]
    return corrupted, chosen


def pretrain_mlm(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    *,
    num_beneficial: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_length: int = 64,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[EncoderClassifier, list[dict[str, float]]]:
    """MLM-pre-train a tiny BERT on ``texts``; return it as an EncoderClassifier (fresh beneficial head).

    Adam with linear warm-up (5% of steps) and linear decay, gradient clip 1. The returned log has the
    masked-token loss every 50 steps.
    """
    classifier, _ = build_tiny_bert(num_beneficial, seed, tokenizer=tokenizer)
    config = classifier.trunk.config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlm = BertForMaskedLM(config)  # type: ignore[arg-type]
    mlm.bert.load_state_dict(classifier.trunk.state_dict(), strict=False)  # same init as the classifier trunk
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    rows = [torch.as_tensor(r, dtype=torch.long) for r in enc["input_ids"]]
    special_ids = torch.as_tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    seen = torch.unique(torch.cat(rows))
    vocab_ids = seen[~torch.isin(seen, special_ids)]
    to_sub = torch.full((len(tokenizer),), -1, dtype=torch.long)
    to_sub[vocab_ids] = torch.arange(len(vocab_ids))
    head = mlm.cls.predictions
    pad = int(tokenizer.pad_token_id or 0)
    opt = torch.optim.Adam(mlm.parameters(), lr=lr)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    gen = torch.Generator().manual_seed(seed)
    log: list[dict[str, float]] = []
    running, started = 0.0, time.monotonic()
    mlm.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(steps):
            pick = torch.randint(0, len(rows), (batch_size,), generator=gen).tolist()
            width = max(len(rows[i]) for i in pick)
            ids = torch.full((batch_size, width), pad, dtype=torch.long)
            attn = torch.zeros((batch_size, width), dtype=torch.long)
            for r, i in enumerate(pick):
                ids[r, : len(rows[i])] = rows[i]
                attn[r, : len(rows[i])] = 1
            special = torch.isin(ids, special_ids) | (attn == 0)
            corrupted, chosen = mask_tokens(ids, special, int(tokenizer.mask_token_id), vocab_ids, gen)
            hidden = mlm.bert(input_ids=corrupted, attention_mask=attn).last_hidden_state
            weight = mlm.bert.embeddings.word_embeddings.weight[vocab_ids]
            logits = F.linear(head.transform(hidden[chosen]), weight, head.bias[vocab_ids])
            loss = F.cross_entropy(logits, to_sub[ids[chosen]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
            opt.step()
            sched.step()
            running += float(loss.detach())
            if (step + 1) % 50 == 0 or step + 1 == steps:
                count = 50 if (step + 1) % 50 == 0 else (step + 1) % 50
                log.append({"step": step + 1, "mlm_loss": running / count, "elapsed_s": time.monotonic() - started})
                if progress is not None:
                    progress(step + 1, running / count)
                running = 0.0
    missing = classifier.trunk.load_state_dict(mlm.bert.state_dict(), strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    classifier.eval()
    return classifier, log
