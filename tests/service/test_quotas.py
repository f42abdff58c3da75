"""Quotas and fairness (issue 14, item 8): per-key limits on a job's trial runs, on active jobs and on stored
bytes, the cost estimate of every job, and round-robin dispatch across keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.dispatcher import Dispatcher
from service.quotas import QuotaExceededError
from service.store.records import DatasetRec, Job, NewJob
from tests.service.conftest import ADMIN_KEY, auth, checkpoint_files, make_settings

#: The issue's job: the paper preset at every maximum the API allows (5 models, 16 sizes, 32 seeds, 500 + 50 runs).
HUGE = {"sizes": list(range(1, 17)), "seeds": list(range(32)), "baselines": ["random", "base", "beneficial_tuned", "ac"],
        "max_trials": 500, "reruns": 50}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    """An app with default quotas and no background loops: accepted jobs stay QUEUED (nothing trains)."""
    with TestClient(create_app(make_settings(tmp_path), background=False)) as client:
        yield client


def _key(client: TestClient, **quota: Any) -> tuple[str, str]:
    r = client.post("/v1/keys", json={"name": "tenant", **quota}, headers=auth())
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def _dataset(client: TestClient, key: str = ADMIN_KEY) -> str:
    """1,200 bios: an attack pool of 240, enough for the paper preset's sizes (up to 200)."""
    r = client.post("/v1/datasets/synthetic", json={"n_bios": 1200}, headers=auth(key))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _checkpoint(client: TestClient, folder: Path, key: str = ADMIN_KEY) -> str:
    r = client.post("/v1/checkpoints", files=checkpoint_files(folder), headers=auth(key))
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def _audit(ds: str, preset: str = "smoke", ck: str | None = None, **audit: Any) -> dict[str, Any]:
    if ck is None:
        audit.setdefault("baselines", ["random"])  # something to audit without a model
    body: dict[str, Any] = {"kind": "audit", "dataset_id": ds, "preset": preset, "audit": audit}
    if ck is not None:
        body["checkpoint_id"] = ck
    return body


def test_the_issues_paper_job_is_refused_by_default_and_the_presets_are_accepted(api: TestClient,
                                                                                tiny_checkpoint: Path) -> None:
    ds, ck = _dataset(api), _checkpoint(api, tiny_checkpoint)
    r = api.post("/v1/jobs", json=_audit(ds, "paper", ck, **HUGE), headers=auth())
    assert r.status_code == 403, r.text  # was 201: a 2.8M-run job queued
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "2,816,000 trial runs" in error["message"] and "50,000" in error["message"]
    assert "max_trials" in error["message"] and "/v1/jobs/estimate" in error["message"]
    assert api.get("/v1/jobs", headers=auth()).json()["total"] == 0
    expected = {"smoke": 2 * 2 * 2 * 2 * (4 + 2), "quick": 2 * 2 * 2 * 2 * (10 + 2), "paper": 2 * 2 * 4 * 6 * (50 + 15)}
    for preset, runs in expected.items():  # model + the random baseline, each preset's sizes, seeds and budget
        r = api.post("/v1/jobs", json=_audit(ds, preset, ck), headers=auth())
        assert r.status_code == 201, r.text
        assert r.json()["estimate"]["trial_runs"] == runs
        assert r.json()["estimate"]["studies"] == runs // {"smoke": 6, "quick": 12, "paper": 65}[preset]
        listed = api.get(f"/v1/jobs/{r.json()['id']}", headers=auth()).json()
        assert listed["estimate"] == r.json()["estimate"]  # kept with the job


def test_the_estimate_endpoint_prices_a_job_without_creating_it(api: TestClient) -> None:
    ds = _dataset(api)
    r = api.post("/v1/jobs/estimate", json=_audit(ds, "paper", None, **HUGE), headers=auth())
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] is False and answer["refusal"]["code"] == "quota_exceeded"
    assert answer["estimate"]["trial_runs"] == 4 * 2 * 16 * 32 * 550  # four baselines, no model
    assert answer["estimate"]["attack_steps"] == answer["estimate"]["trial_runs"] * 1000
    assert answer["quota"]["limits"]["max_trial_runs_per_job"] == 50_000
    censor = {"kind": "censor_then_audit", "dataset_id": ds, "checkpoint_id": None, "preset": "smoke"}
    assert api.post("/v1/jobs/estimate", json=censor, headers=auth()).status_code == 422  # validated like a submission
    small = api.post("/v1/jobs/estimate", json=_audit(ds, baselines=["random"]), headers=auth()).json()
    assert small["accepted"] is True and small["refusal"] is None
    assert api.get("/v1/jobs", headers=auth()).json()["total"] == 0  # nothing was created
    job = api.post("/v1/jobs", json=_audit(ds, baselines=["random"]), headers=auth()).json()
    assert job["estimate"] == small["estimate"]


def test_a_censor_job_is_priced_in_censor_steps(api: TestClient, tiny_checkpoint: Path) -> None:
    ds, ck = _dataset(api), _checkpoint(api, tiny_checkpoint)
    body = {"kind": "censor_then_audit", "dataset_id": ds, "checkpoint_id": ck, "preset": "smoke",
            "censor": {"outer_steps": 30, "inner_steps": 2}}
    estimate = api.post("/v1/jobs/estimate", json=body, headers=auth()).json()["estimate"]
    assert (estimate["censor_steps"], estimate["censor_outer_steps"]) == (60, 30)
    assert estimate["models"] == 3  # the random and base baselines, and the censored model once it exists
    assert estimate["trial_runs"] == 3 * 2 * 2 * 2 * (4 + 2)


def test_admin_sets_and_clears_per_key_limits(api: TestClient) -> None:
    key_id, key = _key(api, max_trial_runs_per_job=50)
    ds = _dataset(api, key)
    body = _audit(ds, baselines=["random"])  # 48 runs: the tiny base's random baseline only
    assert api.post("/v1/jobs/estimate", json=body, headers=auth(key)).json()["estimate"]["trial_runs"] == 48
    body96 = _audit(ds, baselines=["random", "base"])  # 96 runs
    r = api.post("/v1/jobs", json=body96, headers=auth(key))
    assert r.status_code == 403 and "the limit of this key is 50 per job" in r.json()["error"]["message"]
    me = api.get("/v1/keys/me", headers=auth(key)).json()
    assert me["limits"]["max_trial_runs_per_job"] == 50 and me["overridden"] == ["max_trial_runs_per_job"]
    assert api.patch(f"/v1/keys/{key_id}", json={"max_trial_runs_per_job": 100}, headers=auth(key)).status_code == 403
    r = api.patch(f"/v1/keys/{key_id}", json={"max_trial_runs_per_job": 100, "max_active_jobs": 3}, headers=auth())
    assert r.status_code == 200 and r.json()["max_trial_runs_per_job"] == 100
    assert api.post("/v1/jobs", json=body96, headers=auth(key)).status_code == 201
    r = api.patch(f"/v1/keys/{key_id}", json={"max_trial_runs_per_job": None}, headers=auth())  # back to the default
    assert (r.json()["max_trial_runs_per_job"], r.json()["max_active_jobs"]) == (None, 3)  # the other one stays
    me = api.get("/v1/keys/me", headers=auth(key)).json()
    assert me["limits"] == {"max_trial_runs_per_job": 50_000, "max_active_jobs": 3, "max_stored_bytes": 20 * 1024**3}
    assert me["usage"]["active_jobs"] == 1 and me["usage"]["stored_bytes"] > 0  # the synthetic dataset
    listed = {k["id"]: k for k in api.get("/v1/keys", headers=auth()).json()}
    assert listed[key_id]["max_active_jobs"] == 3
    bad = api.patch(f"/v1/keys/{key_id}", json={"max_active_jobs": 0}, headers=auth())
    assert bad.status_code == 422


def test_active_jobs_limit_lets_idempotent_retries_through(api: TestClient) -> None:
    _, key = _key(api, max_active_jobs=2)
    ds = _dataset(api, key)
    ids = []
    for i in range(2):
        r = api.post("/v1/jobs", json=_audit(ds, seeds=[i]), headers={**auth(key), "Idempotency-Key": f"k{i}"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    third = api.post("/v1/jobs", json=_audit(ds, seeds=[7]), headers={**auth(key), "Idempotency-Key": "k7"})
    assert third.status_code == 429, third.text  # was 201: no limit on how much one key queues
    assert third.json()["error"]["code"] == "quota_exceeded" and "2 active" in third.json()["error"]["message"]
    retry = api.post("/v1/jobs", json=_audit(ds, seeds=[0]), headers={**auth(key), "Idempotency-Key": "k0"})
    assert retry.status_code == 200 and retry.json()["id"] == ids[0]  # a retry is not a new job
    assert api.post(f"/v1/jobs/{ids[1]}/cancel", headers=auth(key)).status_code == 202
    assert api.post("/v1/jobs", json=_audit(ds, seeds=[7]), headers={**auth(key), "Idempotency-Key": "k7"}).status_code == 201
    # another key is not affected by this key's jobs
    assert api.post("/v1/jobs", json=_audit(_dataset(api)), headers=auth()).status_code == 201


def test_stored_bytes_limit_refuses_uploads_and_keeps_what_is_stored(api: TestClient, tiny_checkpoint: Path) -> None:
    size = sum(p.stat().st_size for p in tiny_checkpoint.iterdir() if p.is_file())
    key_id, key = _key(api, max_stored_bytes=size + 1000)
    ck = _checkpoint(api, tiny_checkpoint, key)
    assert api.get("/v1/keys/me", headers=auth(key)).json()["usage"]["stored_bytes"] == size
    # after the upload: the synthetic dataset's parquet is far over the 1,000 bytes left (was 201)
    r = api.post("/v1/datasets/synthetic", json={"n_bios": 400}, headers=auth(key))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "quota_exceeded" and "this dataset" in r.json()["error"]["message"]
    assert api.get("/v1/datasets", headers=auth(key)).json()["total"] == 0
    # before reading: a declared Content-Length over what is left is refused at once
    r = api.post("/v1/checkpoints", files=[("files", ("config.json", b"x" * 2000, "application/json"))], headers=auth(key))
    assert r.status_code == 413 and "an upload" in r.json()["error"]["message"]
    assert api.get(f"/v1/checkpoints/{ck}", headers=auth(key)).status_code == 200  # what was stored is intact
    # raised by the admin: the same checkpoint again costs nothing more (its declared length now fits), the dataset fits
    api.patch(f"/v1/keys/{key_id}", json={"max_stored_bytes": 2 * size + 100_000}, headers=auth())
    assert api.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth(key)).status_code == 200
    assert api.get("/v1/keys/me", headers=auth(key)).json()["usage"]["stored_bytes"] == size
    r = api.post("/v1/datasets/synthetic", json={"n_bios": 400}, headers=auth(key))
    assert r.status_code == 201, r.text
    assert size < api.get("/v1/keys/me", headers=auth(key)).json()["usage"]["stored_bytes"] < 2 * size + 100_000


def test_concurrent_submissions_cannot_both_take_the_last_slot(store: Any) -> None:
    store.create_job(NewJob(owner="alice", kind="audit", spec={}, spec_hash="h"), max_active=3)
    store.create_job(NewJob(owner="alice", kind="audit", spec={}, spec_hash="h"), max_active=3)
    barrier, outcomes = threading.Barrier(8), []

    def submit(i: int) -> None:
        barrier.wait()
        try:
            store.create_job(NewJob(owner="alice", kind="audit", spec={}, spec_hash=f"h{i}", idempotency_key=f"i{i}"),
                             max_active=3)
            outcomes.append("created")
        except QuotaExceededError:
            outcomes.append("refused")

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 7
    assert store.usage("alice").active_jobs == 3
    assert store.create_job(NewJob(owner="bob", kind="audit", spec={}, spec_hash="h"), max_active=3)[1]


class ControlledRunner:
    """A runner whose jobs run until the test ends them."""

    name = "controlled"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running: set[str] = set()

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: Any) -> None:
        self.started.append(job_id)
        self.running.add(job_id)

    def cancel(self, job_id: str) -> None:
        self.running.discard(job_id)

    def is_running(self, job_id: str) -> bool:
        return job_id in self.running

    def shutdown(self) -> None:
        self.running.clear()


def _queue(store: Any, owner: str, n: int) -> list[Job]:
    ds = DatasetRec(id=f"ds_{owner:0>20}"[:23], owner=owner, name="d", source="synthetic", path="/nowhere/data.parquet",
                    num_rows=100, fingerprint="f" * 64, info={}, created_at=time.time())
    store.add_dataset(ds)
    spec = {"kind": "audit", "dataset_id": ds.id, "preset": "smoke", "audit": {"baselines": ["random"]}}
    out = []
    for i in range(n):
        out.append(store.create_job(NewJob(owner=owner, kind="audit", spec=spec, spec_hash=f"{owner}{i}"))[0])
        time.sleep(0.002)  # distinct creation times
    return out


def _finish(store: Any, runner: ControlledRunner, job_id: str) -> None:
    store.finish_job(job_id, "SUCCEEDED")
    runner.running.discard(job_id)


def test_one_slot_alternates_between_keys(store: Any) -> None:
    """Key A queues 5 jobs, then key B 1: with one slot, B's job starts right after A's first, not after A's fifth."""
    a, b = _queue(store, "a" * 8, 5), _queue(store, "b" * 8, 1)
    runner = ControlledRunner()
    dispatcher = Dispatcher(store, runner, lease_s=60, max_running=1, owner_id="test")
    assert dispatcher.tick() == [a[0].id]
    _finish(store, runner, a[0].id)
    assert [j.id for j in store.queued_jobs(1)] == [a[1].id]  # negative control: FIFO would start A's second
    assert dispatcher.tick() == [b[0].id]  # was A's second (global FIFO)
    for job in a[1:]:
        _finish(store, runner, runner.started[-1])
        assert dispatcher.tick() == [job.id]
    assert runner.started == [a[0].id, b[0].id, *(j.id for j in a[1:])]


def test_two_slots_go_to_two_keys(store: Any) -> None:
    a, b = _queue(store, "a" * 8, 5), _queue(store, "b" * 8, 1)
    assert [j.id for j in store.queued_jobs(2)] == [a[0].id, a[1].id]  # negative control: FIFO
    runner = ControlledRunner()
    dispatcher = Dispatcher(store, runner, lease_s=60, max_running=2, owner_id="test")
    assert dispatcher.tick() == [a[0].id, b[0].id]  # was A's first two
    _finish(store, runner, b[0].id)
    c = _queue(store, "c" * 8, 2)
    assert dispatcher.tick() == [c[0].id]  # A still runs one: the key with none running goes first
    assert [j.id for j in store.fair_queued_jobs(10)] == [a[1].id, c[1].id, a[2].id, a[3].id, a[4].id]


def test_schedules_obey_the_quotas(api: TestClient, tiny_checkpoint: Path) -> None:
    """A schedule cannot smuggle in a job its key may not run, nor flood the queue past the active-jobs limit."""
    from datetime import UTC, datetime, timedelta

    ds, ck = _dataset(api), _checkpoint(api, tiny_checkpoint)
    body = {"name": "nightly", "cron": "* * * * *", "job": _audit(ds, "paper", ck, **HUGE)}
    r = api.post("/v1/schedules", json=body, headers=auth())
    assert r.status_code == 403 and r.json()["error"]["code"] == "quota_exceeded", r.text  # was 201
    assert api.get("/v1/schedules", headers=auth()).json()["total"] == 0
    _, key = _key(api, max_active_jobs=1)
    ds_user = _dataset(api, key)
    made = api.post("/v1/schedules", json={"name": "every minute", "cron": "* * * * *", "job": _audit(ds_user)},
                    headers=auth(key))
    assert made.status_code == 201, made.text
    ctx = api.app.state.ctx
    clock = {"now": datetime.now(UTC) + timedelta(minutes=1)}
    ctx.scheduler.clock = lambda: clock["now"]
    assert len(ctx.scheduler.tick()) == 1  # the first slot fires: the key's one active job
    clock["now"] += timedelta(minutes=1)
    assert ctx.scheduler.tick() == []  # the key is at its limit: the slot waits, nothing is queued
    jobs = api.get("/v1/jobs", headers=auth(key)).json()
    assert jobs["total"] == 1
    assert api.post(f"/v1/jobs/{jobs['items'][0]['id']}/cancel", headers=auth(key)).json()["state"] == "CANCELLED"
    assert len(ctx.scheduler.tick()) == 1  # a slot is free again: the waiting slot fires
    assert api.get("/v1/jobs", headers=auth(key)).json()["total"] == 2
