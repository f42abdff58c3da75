"""One real local Ray cluster (2 CPUs, token auth on) shared by the workers tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlac.data import SynthConfig, generate_synthetic, save_dataset
from mlac.models import build_tiny_bert, save_checkpoint


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from workers.runtime import init_ray, shutdown_ray
    from workers.settings import RaySettings

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    data_dir = Path(tmp_path_factory.mktemp("raydata", numbered=True))
    handle = init_ray(RaySettings(data_dir=data_dir, num_cpus=2))
    yield handle
    shutdown_ray()


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = Path(tmp_path_factory.mktemp("assets"))
    ds, task = generate_synthetic(SynthConfig(n_bios=800, seed=0))
    data = save_dataset(ds, task, root / "bios.parquet")
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    save_checkpoint(model, tok, root / "base", {"seed": 0}, beneficial_names=task.beneficial_names)
    return {"data": data, "base": root / "base", "root": root}
