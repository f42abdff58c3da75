"""Fixtures of the attack unit tests (the dataset and the tiny checkpoint are in tests/unit/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def distil_model():  # type: ignore[no-untyped-def]
    """A random 2-layer DistilBERT trunk with a beneficial head (a trunk the packed forward does not cover)."""
    import torch
    from transformers import AutoModel, DistilBertConfig

    from mlac.models import EncoderClassifier

    torch.manual_seed(0)
    trunk = AutoModel.from_config(DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64))
    return EncoderClassifier(trunk, num_beneficial=6)
