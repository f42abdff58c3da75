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
