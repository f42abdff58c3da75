"""Optuna studies in the job store's database (issue 5): where each runner keeps an audit's studies.

- in-process runner: the store's database (SQLite file or PostgreSQL);
- Ray runner on PostgreSQL: the store's database too (the drivers get the URL in the job spec);
- Ray runner on SQLite: each job's ``audit/optuna.db`` (the store's file is local to the API host).
The Ray runner against a real PostgreSQL is in ``tests/e2e/test_optuna_postgres.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app, optuna_storage
from service.runners import RayRunner
from service.store import get_store

from .conftest import auth, checkpoint_files, make_settings


def test_storage_choice_per_runner_and_backend(sqlite_url: str) -> None:
    store = get_store(sqlite_url)
    try:
        assert optuna_storage(store, "inprocess") == store.url
        assert optuna_storage(store, "ray") is None  # audit/optuna.db per job
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_store_is_the_storage_of_both_runners(pg_url: str) -> None:
    store = get_store(pg_url)
    try:
        assert store.url.startswith("postgresql+psycopg://")
        assert optuna_storage(store, "ray") == store.url
        assert optuna_storage(store, "inprocess") == store.url
    finally:
        store.close()


class _RecordingJobRunner:
    def __init__(self) -> None:
        self.specs: list[tuple[str, dict[str, Any]]] = []

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: Any) -> None:
        self.specs.append((kind, spec))


def test_ray_runner_hands_the_storage_to_the_job_driver() -> None:
    runner = object.__new__(RayRunner)  # no Ray needed to check what reaches workers.jobs.JobRunner
    runner.runner = _RecordingJobRunner()  # type: ignore[assignment]
    runner.storage_url = "postgresql+psycopg://u@db:5432/mlac"
    spec = {"request": {"x": 1}}
    runner.submit("job_1", "audit", spec, sink=None)  # type: ignore[arg-type]
    runner.submit("job_2", "censor", {"base": "b", "dataset": "d"}, sink=None)  # type: ignore[arg-type]
    runner.storage_url = None
    runner.submit("job_3", "audit", spec, sink=None)  # type: ignore[arg-type]
    specs = runner.runner.specs  # type: ignore[attr-defined]
    assert specs[0] == ("audit", {"request": {"x": 1}, "optuna_storage": "postgresql+psycopg://u@db:5432/mlac"})
    assert "optuna_storage" not in specs[1][1]  # a censor job has no studies
    assert "optuna_storage" not in specs[2][1]
    assert "optuna_storage" not in spec  # the caller's spec is not changed


@pytest.mark.postgres
def test_in_process_audits_keep_their_own_studies_in_postgres(tmp_path: Path, pg_url: str, tiny_checkpoint: Path) -> None:
    """Two jobs with the same request: both keep their studies in the store's database, each its own
    (the job id namespaces the study names), so the second runs its trials rather than finding the first's."""
    import optuna

    settings = make_settings(tmp_path, database_url=pg_url)
    studies_after: list[int] = []
    trials_per_job: list[int] = []
    with TestClient(create_app(settings)) as client:
        ck = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth()).json()["id"]
        ds = client.post("/v1/datasets/synthetic", json={"n_bios": 400}, headers=auth()).json()["id"]
        body = {"kind": "audit", "dataset_id": ds, "checkpoint_id": ck, "preset": "smoke",
                "audit": {"sizes": [20], "seeds": [0], "baselines": ["random"]}}
        for _ in range(2):
            r = client.post("/v1/jobs", json=body, headers=auth())
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            deadline = time.monotonic() + 600
            while (job := client.get(f"/v1/jobs/{job_id}", headers=auth()).json())["state"] not in (
                    "SUCCEEDED", "FAILED", "CANCELLED"):
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
            assert job["state"] == "SUCCEEDED", job["error"]
            trials_per_job.append(len(client.get(f"/v1/jobs/{job_id}/trials", headers=auth()).json()))
            studies_after.append(len(optuna.get_all_study_summaries(pg_url)))
    summaries = optuna.get_all_study_summaries(pg_url)
    assert studies_after[0] > 0, "no Optuna study in the PostgreSQL job store"
    assert studies_after[1] == 2 * studies_after[0]  # the second job made its own studies
    assert trials_per_job[0] > 0 and trials_per_job[1] == trials_per_job[0]  # and ran its own trials
    assert sum(s.n_trials for s in summaries) >= sum(trials_per_job)
    assert not list(settings.data_dir.rglob("optuna.db")), "studies went to a per-job SQLite file"
