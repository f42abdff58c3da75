"""Fixtures of the audit unit tests: a small synthetic dataset on disk and tiny checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


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


@pytest.fixture(scope="session")
def trained_pair(tmp_path_factory: pytest.TempPathFactory, audit_dataset: Path) -> tuple[Path, Path]:
    """(base, random): a tiny BERT trained 120 steps (batch 16, harmful loss weighted 3x) on both labels of the
    train split, and its re-init."""
    from mlac.data import load_saved_dataset, make_splits
    from mlac.data.encoded import encode_split
    from mlac.models import default_tokenizer, random_reinit, save_checkpoint
    from mlac.models.base_model import make_base_model

    ds, task = load_saved_dataset(audit_dataset)
    tok = default_tokenizer()
    train = encode_split(make_splits(ds, 0).train, tok, task)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    base = make_base_model(train, tok, num_beneficial=len(task.beneficial_names), steps=120, batch_size=16,
                            harmful_weight=3.0, seed=0)
    root = tmp_path_factory.mktemp("pair")
    save_checkpoint(base, tok, root / "base", beneficial_names=task.beneficial_names)
    save_checkpoint(random_reinit(base, 1), tok, root / "random", beneficial_names=task.beneficial_names)
    return root / "base", root / "random"
