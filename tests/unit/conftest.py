"""Fixtures shared by the unit tests: a small synthetic dataset on disk and an untrained tiny BERT checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def audit_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,600 synthetic bios saved as parquet + task file (attack pool 320, selection 240, report 240)."""
    from mlac.data import SynthConfig, generate_synthetic, save_dataset

    ds, task = generate_synthetic(SynthConfig(n_bios=1600, seed=0, n_professions=6, names_per_gender=100))
    return save_dataset(ds, task, tmp_path_factory.mktemp("data") / "bios.parquet")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, audit_dataset: Path) -> Path:
    """An untrained tiny BERT checkpoint (fast to attack; accuracies near chance)."""
    from mlac.data import load_saved_dataset
    from mlac.models import build_tiny_bert, save_checkpoint

    _, task = load_saved_dataset(audit_dataset)
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=3)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(model, tok, out, beneficial_names=task.beneficial_names)
    return out
