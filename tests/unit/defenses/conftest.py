"""A small saved dataset and an untrained tiny BERT checkpoint for the defense tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bios(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 synthetic bios saved as parquet + task file."""
    from mlac.data import SynthConfig, generate_synthetic, save_dataset

    ds, task = generate_synthetic(SynthConfig(n_bios=800, seed=0, n_professions=6, names_per_gender=100))
    return save_dataset(ds, task, tmp_path_factory.mktemp("data") / "bios.parquet")


@pytest.fixture(scope="session")
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory, bios: Path) -> Path:
    """An untrained tiny BERT with a beneficial head sized to the dataset."""
    from mlac.data import load_saved_dataset
    from mlac.models import build_tiny_bert, save_checkpoint

    _, task = load_saved_dataset(bios)
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=1)
    out = tmp_path_factory.mktemp("ckpt") / "base"
    save_checkpoint(model, tok, out, {"seed": 1}, beneficial_names=task.beneficial_names)
    return out
