"""Audits through Ray: same curves as in-process, survive killed trial workers, cancel frees the CPUs."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import ray
from ray.util.state import list_tasks

from mlac.audit.presets import build_request
from mlac.audit.runner import run_audit
from mlac.audit.scheduling import InProcessExecutor
from mlac.contracts import JobOutcome
from workers.jobs import JobRunner
from workers.settings import RaySettings
from workers.trial_store import TrialResultStore

pytestmark = pytest.mark.ray


class RecordingSink:
    """Collects what a job reports."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.outcome: dict[str, Any] | None = None
        self.done = threading.Event()

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        self.events.append(event)

    def finished(self, job_id: str, outcome: JobOutcome) -> None:
        self.outcome = {"state": outcome.state, "result_path": outcome.result_path, "error": outcome.failure}
        self.done.set()


def _request(assets: dict[str, Path], **overrides: Any) -> dict[str, Any]:
    req = build_request("smoke", dataset=str(assets["data"]), models=(str(assets["base"]),), **overrides)
    return req.replace(search={**req.to_dict()["search"], "parallelism": 2}).to_dict()


def _curves(result_dir: Path) -> list[tuple[str, str, int, float]]:
    data = json.loads((result_dir / "result.json").read_text())
    return sorted((c["model"], c["task"], int(c["n"]), round(float(c["mean"]), 6)) for c in data["curves"])


def _runner(tmp_path: Path, **kw: Any) -> JobRunner:
    return JobRunner(RaySettings(data_dir=tmp_path, max_concurrency=2, **kw), tmp_path / "artifacts", poll_s=0.3)


def test_smoke_audit_on_ray_equals_in_process(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path) -> None:
    request = _request(tiny_assets)
    from mlac.audit.protocol import AuditRequest

    run_audit(AuditRequest.from_dict(request), tmp_path / "local", executor=InProcessExecutor())
    runner, sink = _runner(tmp_path), RecordingSink()
    runner.submit("same-curves", "audit", {"request": request}, sink)
    assert sink.done.wait(300), "the Ray audit did not finish"
    assert sink.outcome is not None and sink.outcome["state"] == "SUCCEEDED", sink.outcome
    assert _curves(Path(sink.outcome["result_path"])) == _curves(tmp_path / "local")
    assert any(e.get("stage") == "search" for e in sink.events)


def _trial_processes() -> list[int]:
    """PIDs of the Ray workers of this local cluster that are running a trial right now (Ray sets a
    worker's process title to ``ray::<task name>`` while it runs the task; trial names start ``mlac-trial``)."""
    pids = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if " ".join(proc.cmdline()).startswith("ray::mlac-trial"):
                pids.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


def _reported_running_trials(handle: Any) -> list[int]:
    """Worker PIDs of trials the Ray state API reports RUNNING (it learns of changes asynchronously)."""
    tasks = list_tasks(address=handle.dashboard_url, filters=[("state", "=", "RUNNING")], raise_on_missing_output=False)
    return [int(t.worker_pid) for t in tasks
            if str(getattr(t, "name", "")).startswith("mlac-trial") and getattr(t, "worker_pid", None)]


def _is_ray_worker(pid: int) -> bool:
    try:
        return psutil.Process(pid).name().startswith("ray::")
    except psutil.NoSuchProcess:
        return False


def test_killed_trial_workers_are_retried(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path) -> None:
    """SIGKILL three trial workers mid-audit: every trial is retried, none is lost or counted twice."""
    request = _request(tiny_assets, sizes=(20,), tasks=("harmful",),
                       space={"lr_low": 1e-4, "lr_high": 1e-3, "steps_min": 60, "steps_max": 100, "steps_step": 20,
                              "batch_sizes": [12], "kinds": ["full"]})
    runner, sink = _runner(tmp_path, trial_max_retries=4), RecordingSink()
    runner.submit("kill-trials", "audit", {"request": request}, sink)
    killed: set[int] = set()
    deadline = time.monotonic() + 240
    while len(killed) < 3 and not sink.done.is_set() and time.monotonic() < deadline:
        for pid in _trial_processes():
            if pid not in killed and len(killed) < 3:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                time.sleep(0.3)
        time.sleep(0.1)
    assert len(killed) == 3, f"could only kill {len(killed)} trial workers; job outcome: {sink.outcome}"
    assert sink.done.wait(300), "the audit did not finish after the kills"
    assert sink.outcome is not None and sink.outcome["state"] == "SUCCEEDED", sink.outcome
    data = json.loads((Path(sink.outcome["result_path"]) / "result.json").read_text())
    assert [(c["task"], int(c["n"])) for c in data["curves"]] == [("harmful", 20)]  # 1 model x 1 task x 1 size
    points = data["seed_points"]
    assert sorted(p["seed"] for p in points) == [0, 1]
    assert all(p["trials_run"] == 4 and p["failed_trials"] == 0 for p in points)  # kills were retried, not failures
    # Each trial's result was stored exactly once: 2 searches x (4 trials + 2 reruns of the winner).
    assert TrialResultStore(str(runner.job_dir("kill-trials") / "trials")).count() == 12


def test_cancel_frees_the_cpus(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path) -> None:
    request = _request(tiny_assets, space={"lr_low": 1e-4, "lr_high": 1e-3, "steps_min": 200, "steps_max": 400,
                                           "steps_step": 100, "batch_sizes": [24], "kinds": ["full"]})
    runner, sink = _runner(tmp_path), RecordingSink()
    runner.submit("cancel-me", "audit", {"request": request}, sink)
    deadline = time.monotonic() + 120
    while not (running := _trial_processes()):
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.2)
    cancelled_at = time.monotonic()
    runner.cancel("cancel-me")
    assert sink.done.wait(60)
    assert sink.outcome is not None and sink.outcome["state"] == "CANCELLED", sink.outcome
    deadline = cancelled_at + 60
    while ray.available_resources().get("CPU", 0) < 2 or any(_is_ray_worker(pid) for pid in running):
        assert time.monotonic() < deadline, f"not freed: {ray.available_resources()}, trial workers {running}"
        time.sleep(0.5)
    # The state API learns of the kills asynchronously: no trial may still be RUNNING once it has caught up.
    while _reported_running_trials(ray_cluster):
        assert time.monotonic() < deadline, "a cancelled trial is still reported running"
        time.sleep(1.0)
