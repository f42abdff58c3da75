"""Fixtures of the audit unit tests: a small synthetic dataset on disk and tiny checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch


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


@pytest.fixture
def trained_groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the trial groups trained together while the test runs (a spy on the batched runner)."""
    import mlac.audit.trial_group as trial_group

    sizes: list[int] = []
    real = trial_group.run_trials_batched

    def spy(members: Any, **kw: Any) -> Any:
        sizes.append(len(members))
        return real(members, **kw)

    monkeypatch.setattr(trial_group, "run_trials_batched", spy)
    return sizes
