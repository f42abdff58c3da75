"""Fixtures of the model tests: the micro checkpoint of :mod:`tests.unit.models.micro`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.models.micro import write_micro_checkpoint


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid micro checkpoint directory (copy it before changing it)."""
    return write_micro_checkpoint(tmp_path_factory.mktemp("micro") / "ckpt")


@pytest.fixture
def micro_copy(micro_checkpoint: Path, tmp_path: Path) -> Path:
    """A fresh copy of the micro checkpoint for one test to change."""
    dst = tmp_path / "copy"
    shutil.copytree(micro_checkpoint, dst)
    return dst
