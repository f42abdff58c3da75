"""A real multi-node Ray cluster on one machine, the service on top, PostgreSQL as the job store.

``ray start --head`` (1 CPU) plus a second ``ray start --address`` node (1 CPU), both advertising the
custom resource every trial asks for (``MLAC_RAY_TRIAL_RESOURCES``), token auth on throughout; the
service (``python -m service serve``) joins with ``RAY_ADDRESS`` and keeps its jobs in a fresh PostgreSQL
database. Over real HTTP: a ``smoke`` censor_then_audit completes with trials on both nodes (the node id
each trial recorded in the job's trial store, ``<job>/trials/*/*.json``), and an audit whose second node
is SIGKILLed mid-search still completes, every trial after the kill on the head.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.multinode.cluster import TRIAL_RESOURCE, LocalCluster

pytestmark = [pytest.mark.ray, pytest.mark.postgres]
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
#: Small audits: 2 models x 2 tasks x 2 sizes x 1 seed = 8 searches of at most 4 trials (+2 reruns).
AUDIT = {"sizes": [20, 100], "seeds": [0], "baselines": ["random"]}


def _get(c: httpx.Client, path: str) -> Any:
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.json()


def stored_trials(job_dir: Path) -> list[dict[str, Any]]:
    """Every trial result the job wrote once (``trials/<study>/<seed>-<hash>.json``), with its file's mtime."""
    out = []
    for path in sorted((job_dir / "trials").glob("*/*.json")):
        try:
            out.append({**json.loads(path.read_text(encoding="utf-8")), "_mtime": path.stat().st_mtime})
        except (OSError, ValueError):  # written atomically, but be safe against a concurrent rename
            continue
    return out


def wait_done(c: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll the job until it ends; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = _get(c, f"/v1/jobs/{job_id}")
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish in {timeout_s:.0f} s: {job}"
        time.sleep(1)


def test_censor_then_audit_runs_trials_on_both_nodes(cluster: LocalCluster, service: Any, inputs: dict[str, str]) -> None:
    head, workers = cluster.head_id(), cluster.worker_ids()
    assert len(workers) == 1
    with service.client() as c:
        body = {"kind": "censor_then_audit", **inputs, "preset": "smoke", "audit": AUDIT}
        job = c.post("/v1/jobs", json=body)
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        got = wait_done(c, job_id, 480)
        assert got["state"] == "SUCCEEDED", got.get("error")
        result = _get(c, f"/v1/jobs/{job_id}/result")
        assert {cv["model"] for cv in result["curves"]} >= {"random"}
        assert len(result["curves"]) == 2 * 2 * 2  # models x tasks x sizes
        recorded = _get(c, f"/v1/jobs/{job_id}/trials")
        assert recorded, "the job store recorded no trial"
    trials = stored_trials(service.job_dir(job_id))
    nodes = {t["node_id"] for t in trials}
    assert nodes == {head, workers[0]}, f"trials ran on {nodes}; head {head}, second node {workers[0]}"
    print(json.dumps({"trials": len(trials), "per_node": {n[:8]: sum(t["node_id"] == n for t in trials) for n in nodes}}))


def test_audit_completes_on_the_head_after_the_second_node_dies(cluster: LocalCluster, service: Any,
                                                                  inputs: dict[str, str]) -> None:
    """Both nodes up when the job is submitted; its driver goes to the API's node (soft node affinity; the
    service attached to the head before the second node joined), the second node takes trials and is
    SIGKILLed mid-search; the job completes, every later trial on the head."""
    head = cluster.head_id()
    live = [n for n in cluster.nodes[1:] if n.alive()]
    second_proc = live[0] if live else cluster.add_node(cpus=1, resources={TRIAL_RESOURCE: 1})
    with service.client() as c:
        body = {"kind": "audit", **inputs, "preset": "smoke", "audit": AUDIT}
        job = c.post("/v1/jobs", json=body)
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 120
        while (driver_node := cluster.actor_node_id(f"mlac-job-{job_id}")) is None:
            assert time.monotonic() < deadline, f"the job's driver was not placed: {_get(c, f'/v1/jobs/{job_id}')}"
            time.sleep(0.5)
        assert driver_node == head, "the job's driver is not on the API's node"
        second = cluster.worker_ids()[0]
        deadline = time.monotonic() + 240
        while not any(t["node_id"] == second for t in stored_trials(service.job_dir(job_id))):
            got = _get(c, f"/v1/jobs/{job_id}")
            assert got["state"] in ("QUEUED", "RUNNING"), f"the job ended before a trial ran on the second node: {got}"
            assert time.monotonic() < deadline, f"no trial ran on the second node: {got}"
            time.sleep(0.5)
        progress = _get(c, f"/v1/jobs/{job_id}")["progress"]
        assert (progress.get("studies_done") or 0) < (progress.get("studies_total") or 8), "killed too late"
        killed_at = time.time()
        second_proc.kill()  # SIGKILL the second node's raylet, agents and workers at once
        got = wait_done(c, job_id, 480)
        assert got["state"] == "SUCCEEDED", got.get("error")
        result = _get(c, f"/v1/jobs/{job_id}/result")
        assert len(result["curves"]) == 2 * 2 * 2
    deadline = time.monotonic() + 120  # the GCS marks a killed node dead after its health checks time out
    while (alive := [n["node_id"] for n in cluster.alive_nodes()]) != [head] and time.monotonic() < deadline:
        time.sleep(1.0)
    assert alive == [head], "the killed node is still reported alive"
    trials = stored_trials(service.job_dir(job_id))
    after = [t for t in trials if t["_mtime"] > killed_at + 1.0]
    assert after, "no trial finished after the kill: the kill came too late to test anything"
    assert {t["node_id"] for t in after} == {head}, "a trial finished on the dead node after it was killed"
    print(json.dumps({"trials": len(trials), "on_second_before_kill": sum(t["node_id"] == second for t in trials),
                      "after_kill": len(after)}))
