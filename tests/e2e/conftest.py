"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid tiny BERT checkpoint directory with 12 beneficial classes (the synthetic data's)."""
    from mlac.data import SynthConfig, generate_synthetic
    from mlac.models import build_tiny_bert, save_checkpoint

    root = Path(tmp_path_factory.mktemp("e2e-ckpt"))
    _, task = generate_synthetic(SynthConfig(n_bios=100, seed=0))
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    save_checkpoint(model, tok, root / "base", {"seed": 0}, beneficial_names=task.beneficial_names)
    return root / "base"


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT trained on gender and profession: its features carry the harmful label."""
    from mlac.data import SynthConfig, generate_synthetic, make_splits
    from mlac.data.encoded import encode_split
    from mlac.models import build_tiny_bert, save_checkpoint
    from mlac.models.base_model import make_base_model

    ds, task = generate_synthetic(SynthConfig(n_bios=1200, seed=1))
    _, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    train = encode_split(make_splits(ds, 0).train, tok, task, 64)
    model = make_base_model(train, tok, num_beneficial=len(task.beneficial_names), steps=120, harmful_weight=3.0)
    out = Path(tmp_path_factory.mktemp("trained")) / "trained"
    save_checkpoint(model, tok, out, {"seed": 0}, beneficial_names=task.beneficial_names)
    return out
