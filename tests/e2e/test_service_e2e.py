"""End to end over real HTTP: uvicorn in a subprocess on a loopback port, a real local Ray (token auth on).

Upload a checkpoint, create a synthetic dataset, submit ``censor_then_audit`` (smoke), SIGKILL the server
mid-audit, start it again: the job is re-queued when its lease runs out, resumes, and completes without
re-running a finished trial; then the result, the report and the figures are fetched and checked, also
through the CLI client.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ADMIN, Server, free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _get(c: httpx.Client, path: str) -> Any:
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.json()


def _optuna_trials(db: Path) -> dict[str, list[Any]]:
    import optuna

    assert db.is_file(), f"no Optuna storage at {db}"
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).get_trials(deepcopy=False)
            for s in optuna.get_all_study_summaries(storage)}


def test_upload_censor_then_audit_survives_a_killed_server(tmp_path: Path, tiny_checkpoint_dir: Path) -> None:
    server = Server(tmp_path / "data", free_port())
    server.start()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
            files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
                     for p in sorted(tiny_checkpoint_dir.iterdir()) if p.is_file()]
            ck = c.post("/v1/checkpoints", files=files)
            assert ck.status_code == 201, ck.text
            ds = c.post("/v1/datasets/synthetic", json={"n_bios": 800})
            assert ds.status_code == 201, ds.text
            body = {"kind": "censor_then_audit", "dataset_id": ds.json()["id"], "checkpoint_id": ck.json()["id"],
                    "preset": "smoke", "audit": {"sizes": [20, 100], "seeds": [0, 1]}}
            job = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "e2e"})
            assert job.status_code == 201, job.text
            job_id = job.json()["id"]
            deadline = time.monotonic() + 300
            while True:
                got = _get(c, f"/v1/jobs/{job_id}")
                assert got["state"] in ("QUEUED", "RUNNING"), got
                # Mid-search: the searches run in lockstep (all 24 in flight, their ready trials trained in groups),
                # so they finish together at the end; kill once a dozen trials are recorded.
                if got["progress"].get("stage") == "search" and (got["progress"].get("trials_done") or 0) >= 12:
                    break
                assert time.monotonic() < deadline, f"no search progress: {got}"
                time.sleep(0.2)
            before = {(t["study"], t["trial"]): t["value"] for t in _get(c, f"/v1/jobs/{job_id}/trials")}
        server.kill()
        assert before, "no trial was recorded before the kill"

        server.start()
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as c:
            deadline = time.monotonic() + 300
            while True:
                got = _get(c, f"/v1/jobs/{job_id}")
                if got["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    break
                assert time.monotonic() < deadline, f"job did not finish after the restart: {got}"
                time.sleep(1)
            assert got["state"] == "SUCCEEDED", got["error"]
            assert got["attempts"] >= 1  # it was re-queued after the crash

            after = {(t["study"], t["trial"]): t["value"] for t in _get(c, f"/v1/jobs/{job_id}/trials")}
            assert all(after[k] == v for k, v in before.items())  # finished trials kept, written once

            result = _get(c, f"/v1/jobs/{job_id}/result")
            assert {"random", "base"} <= {cv["model"] for cv in result["curves"]}
            assert result["verdict"]["status"] in ("PASS", "FAIL", "INCONCLUSIVE")
            report = c.get(f"/v1/jobs/{job_id}/report")
            assert report.status_code == 200 and "<html" in report.text.lower() and "verdict" in report.text.lower()
            for name in ("curves", "attack_budget"):
                png = c.get(f"/v1/jobs/{job_id}/figures/{name}.png")
                assert png.status_code == 200 and png.content[:4] == b"\x89PNG", name

        studies = _optuna_trials(tmp_path / "data" / "artifacts" / "jobs" / job_id / "audit" / "optuna.db")
        assert len(studies) == 3 * 2 * 2 * 2  # models x tasks x sizes x seeds
        max_trials = 4  # the smoke preset
        finished = Counter()
        for name, trials in studies.items():
            states = Counter(t.state.name for t in trials)
            assert states["RUNNING"] == states["WAITING"] == 0, (name, states)
            assert states["COMPLETE"] + states["PRUNED"] + states["FAIL"] <= max_trials, (name, states)
            finished[name] = states["COMPLETE"] + states["PRUNED"] + states["FAIL"]
        # No search restarted from zero or ran over its budget: trials in flight at the kill were run again
        # under their own numbers. Every trial Optuna finished has exactly one record: those whose progress
        # events died with the server were rebuilt from the Optuna storage when the job resumed.
        assert len(after) == sum(finished.values()) <= max_trials * len(studies)

        env = {**os.environ, "MLAC_URL": server.url, "MLAC_API_KEY": ADMIN}
        out = subprocess.run([sys.executable, "-m", "service", "result", job_id, "--out", str(tmp_path / "fetched")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "random" in out.stdout and (tmp_path / "fetched" / "report.html").is_file()
        watch = subprocess.run([sys.executable, "-m", "service", "watch", job_id], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
        assert watch.returncode == 0 and "SUCCEEDED" in watch.stdout, watch.stdout + watch.stderr
        print(json.dumps({"trials_before_kill": len(before), "trials_total": len(after)}))
    finally:
        server.stop()
        server.kill()
