"""Kill the censoring actor mid-training: Ray restarts it and it resumes from its checkpoint."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import ray

from workers.censor_actor import censor_actor_class

pytestmark = pytest.mark.ray

CONFIG = {
    "inner_steps": 1, "outer_steps": 30, "checkpoint_every": 4, "val_every": 10, "outer_batch_size": 8,
    "inner_batch_sizes": [8], "max_length": 48, "val_max_examples": 32, "val_batches": 1, "remap_steps": 10,
    "outer_lr": 1e-4, "seed": 0,
}


def test_killed_censor_actor_restarts_and_resumes(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "censored"
    actor = censor_actor_class(max_restarts=2).options(num_cpus=1).remote(
        str(tiny_assets["base"]), str(tiny_assets["data"]), str(out), CONFIG
    )
    pid = ray.get(actor.pid.remote())
    run = actor.run.remote()
    deadline = time.monotonic() + 120
    while (ray.get(actor.progress.remote()).get("step") or 0) < 10:
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    result = ray.get(run, timeout=240)
    assert ray.get(actor.pid.remote()) != pid
    assert result["steps_done"] == 30
    assert result["resumed_from"] is not None and result["resumed_from"] >= 8  # not redone from 0
    assert (out / "model.safetensors").is_file() and result["weights_sha256"]
