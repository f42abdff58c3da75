"""``audit.log_samples`` through the API (a real app, in-process runner): a smoke audit job that asks for them
serves ``samples.csv`` (and its per-example summary) at its export route, read back with pandas; a job that did
not ask answers 404 there and keeps the request it always had."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from service.app import create_app

from .conftest import auth, checkpoint_files, make_settings, new_key

REPORT_ROWS, RERUNS = 40, 2
AUDIT = {"tasks": ["harmful"], "sizes": [20], "seeds": [0], "baselines": [], "max_trials": 1, "reruns": RERUNS,
         "selection_max": 40, "report_max": REPORT_ROWS}


def _finished(client: TestClient, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth()).json()
        if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert job["state"] == "SUCCEEDED", job["error"]
            return dict(job)
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_a_job_with_log_samples_serves_samples_csv(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        ck = client.post("/v1/checkpoints", files=checkpoint_files(tiny_checkpoint), headers=auth()).json()["id"]
        ds = client.post("/v1/datasets/synthetic", json={"n_bios": 800}, headers=auth()).json()["id"]
        jobs = {}
        for flag in (True, False):
            body = {"kind": "audit", "dataset_id": ds, "checkpoint_id": ck, "preset": "smoke",
                    "audit": {**AUDIT, **({"log_samples": True} if flag else {})}}
            r = client.post("/v1/jobs", json=body, headers=auth())
            assert r.status_code == 201, r.text
            jobs[flag] = r.json()["id"]
            # one after the other: two audits opening a fresh SQLite store's Optuna tables at once race
            _finished(client, jobs[flag])

        on = jobs[True]
        r = client.get(f"/v1/jobs/{on}/export.csv", params={"table": "samples"}, headers=auth())
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert f'filename="{on}-samples.csv"' in r.headers["content-disposition"]
        samples = pd.read_csv(io.StringIO(r.text))
        assert len(samples) == RERUNS * REPORT_ROWS
        assert set(samples["rerun"]) == set(range(RERUNS)) and set(samples["correct"]) <= {0, 1}
        point = client.get(f"/v1/jobs/{on}/result", headers=auth()).json()["seed_points"][0]
        assert [float(samples[samples["rerun"] == i]["correct"].mean()) for i in range(RERUNS)] == point["rerun_accuracies"]
        summary = pd.read_csv(io.StringIO(client.get(f"/v1/jobs/{on}/export.csv", params={"table": "samples_summary"},
                                                     headers=auth()).text))
        assert len(summary) == REPORT_ROWS and set(summary["runs"]) == {RERUNS}
        assert "/tmp" not in r.text  # no server paths

        off = jobs[False]
        missing = client.get(f"/v1/jobs/{off}/export.csv", params={"table": "samples"}, headers=auth())
        assert missing.status_code == 404 and "log_samples" in missing.text
        assert "log_samples" not in client.get(f"/v1/jobs/{off}/result", headers=auth()).json()["request"]
        other = new_key(client)  # another key sees neither the job nor its samples
        assert client.get(f"/v1/jobs/{on}/export.csv", params={"table": "samples"},
                          headers=auth(other)).status_code == 404


def test_idempotency_hash_of_a_request_without_log_samples_is_unchanged() -> None:
    """Retries of submissions made before the option existed still match their Idempotency-Key."""
    import hashlib
    import json

    from service.jobspec import spec_hash
    from service.schemas import JobCreate

    body = JobCreate.model_validate({"kind": "audit", "dataset_id": "ds_" + "0" * 20, "audit": {"sizes": [20]}})
    before = body.model_dump(mode="json")  # the body as the schema without the field dumped it
    before.pop("defense")
    before["audit"].pop("log_samples")
    old = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert spec_hash(body) == old
    on = JobCreate.model_validate({"kind": "audit", "dataset_id": "ds_" + "0" * 20,
                                   "audit": {"sizes": [20], "log_samples": True}})
    assert spec_hash(on) != old
