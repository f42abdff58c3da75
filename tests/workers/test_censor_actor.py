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


def test_censor_job_through_the_job_runner(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path) -> None:
    """A ``censor`` job: named driver, censor actor, progress with steps and ETA, SUCCEEDED with the checkpoint."""
    import threading

    from workers.jobs import JobRunner
    from workers.progress import CallbackSink
    from workers.settings import RaySettings

    events: list[dict] = []
    outcome: dict = {}
    ended = threading.Event()
    sink = CallbackSink(lambda _, e: events.append(e), lambda _, s, r, e: (outcome.update(state=s, path=r, error=e), ended.set()))
    runner = JobRunner(RaySettings(data_dir=tmp_path), tmp_path / "artifacts", poll_s=0.3)
    spec = {"base": str(tiny_assets["base"]), "dataset": str(tiny_assets["data"]),
            "censor_config": {**CONFIG, "outer_steps": 6, "checkpoint_every": 3, "val_every": 6}}
    runner.submit("censor-job", "censor", spec, sink)
    assert ended.wait(240), "the censor job did not finish"
    assert outcome["state"] == "SUCCEEDED", outcome
    assert (Path(outcome["path"]) / "model.safetensors").is_file()
    censor = [e for e in events if e.get("stage") == "censor" and e.get("step") is not None]
    assert censor and max(e["step"] for e in censor) == 6  # the last record (step 6) reached the sink
    assert all("eta_s" in e and "beneficial_ce" in e for e in censor)  # step records carry losses and ETA
    assert not runner.is_running("censor-job")


def test_bad_job_specs_are_refused_with_a_fix() -> None:
    from mlac.errors import ConfigError
    from workers.jobs import check_spec

    with pytest.raises(ConfigError, match="choose from"):
        check_spec("train", {})
    with pytest.raises(ConfigError, match="missing dataset"):
        check_spec("censor", {"base": "/x"})
    check_spec("audit", {"request": {}})
