"""Separate machines on one machine: an audit through the service whose trials and driver run on a node that cannot
see the API's disk, with the ``file://`` store (through the gateway actor) and with an S3 store; and a job that
survives the loss of the node its driver ran on.

Layout (``conftest``): the head is the API's machine and runs no trial or driver; each *machine* is a raylet in its
own mount namespace with a tmpfs over the API's folder, advertising the trial and the driver resources. Every
result is compared with the same job run in this (the API's) process on one node: the same curves, to the bit
of their rounding, and the same number of trial results stored once each.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.multinode.cluster import GroupProcess, LocalCluster, nodes_with
from tests.multinode.conftest import BUCKET, DRIVER_RESOURCE, Service, upload_inputs

pytestmark = [pytest.mark.ray, pytest.mark.postgres]
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
#: 2 models (checkpoint, random) x harmful x 2 sizes x 1 seed = 4 searches of at most 4 trials + 2 reruns.
AUDIT = {"sizes": [20, 100], "seeds": [0], "tasks": ["harmful"], "baselines": ["random"]}
Curve = tuple[str, str, int, float]


def _get(c: httpx.Client, path: str) -> Any:
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.json()


def curves_of(result: dict[str, Any]) -> list[Curve]:
    """The comparable part of a result: (model, task, n, mean) per curve."""
    return sorted((c["model"], c["task"], int(c["n"]), round(float(c["mean"]), 6)) for c in result["curves"])


def wait_done(c: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll the job until it ends; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = _get(c, f"/v1/jobs/{job_id}")
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish in {timeout_s:.0f} s: {job}"
        time.sleep(1)


def wait_driver(cluster: LocalCluster, c: httpx.Client, job_id: str, timeout_s: float = 300) -> str:
    """The node the job's driver actor runs on, once Ray placed it."""
    deadline = time.monotonic() + timeout_s
    while (node := cluster.actor_node_id(f"mlac-job-{job_id}")) is None:
        job = _get(c, f"/v1/jobs/{job_id}")
        assert job["state"] not in TERMINAL, f"the job ended before its driver could be seen: {job}"
        assert time.monotonic() < deadline, f"the job's driver was not placed: {job}"
        time.sleep(0.5)
    return node


def worker_spec(service: Service, job_id: str) -> dict[str, Any]:
    """The spec the service resolved for the job (its row in the service's database; names API paths)."""
    import psycopg

    url = service.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT spec FROM mlac_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None, job_id
    spec = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return dict(spec["worker_spec"])


class OneNode:
    """The reference: the job's spec run once in this process (the API's host, one node, no store), cached."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.curves: list[Curve] | None = None

    def of(self, service: Service, job_id: str) -> list[Curve]:
        if self.curves is None:
            from mlac.audit.scheduling import InProcessExecutor
            from mlac.jobs import JobSpec, run_job

            spec = worker_spec(service, job_id)
            spec.pop("optuna_storage", None)  # its own SQLite journal, not the service's database
            outcome = run_job(JobSpec.from_dict(spec), self.root, executor=InProcessExecutor())
            assert outcome.state == "SUCCEEDED", outcome
            assert outcome.result_path is not None
            self.curves = curves_of(json.loads((Path(outcome.result_path) / "result.json").read_text()))
        return self.curves


@pytest.fixture(scope="module")
def one_node(root: Path) -> OneNode:
    return OneNode(root / "one-node")


@pytest.fixture(scope="module")
def machine(services: dict[str, Service], add_machine: Callable[[], GroupProcess]) -> GroupProcess:
    """The first machine, added once both services are attached to the head."""
    return add_machine()


@pytest.fixture(scope="module")
def aws(s3_env: dict[str, str]) -> Iterator[None]:
    """This process's environment pointed at the local S3 server (to read the s3 store's objects)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_env.items():
            mp.setenv(key, value)
        yield


def stored_trials(service: Service, job_id: str) -> list[dict[str, Any]]:
    """Every trial result the job's driver stored (``jobs/<id>/trials/<study>/<seed>-<hash>.json`` of its store)."""
    from workers.artifacts.store import FsspecStore

    url = service.env.get("MLAC_ARTIFACT_URL") or f"file://{service.data_dir / 'artifacts'}"
    store = FsspecStore(url)
    return [json.loads(store.read(k)) for k in store.list(f"jobs/{job_id}/trials") if k.endswith(".json")]


#: The number of trial results each audit stored (they must agree: nothing run twice, nothing lost).
COUNTS: dict[str, int] = {}


def run_audit_on_a_machine(cluster: LocalCluster, service: Service, source: Path, one_node: OneNode,
                           label: str) -> None:
    machines = nodes_with(cluster, DRIVER_RESOURCE)
    head = cluster.head_id()
    with service.client() as c:
        inputs = upload_inputs(service, source)
        job = c.post("/v1/jobs", json={"kind": "audit", **inputs, "preset": "smoke", "audit": AUDIT})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        driver_node = wait_driver(cluster, c, job_id)
        got = wait_done(c, job_id, 600)
        assert got["state"] == "SUCCEEDED", got.get("error")
        result = _get(c, f"/v1/jobs/{job_id}/result")
        records = _get(c, f"/v1/jobs/{job_id}/trials")
    assert driver_node in machines and driver_node != head, "the driver ran on the API's machine"
    trials = stored_trials(service, job_id)
    assert trials and {t["node_id"] for t in trials} == set(machines), "a trial ran off the machine"
    assert records, "the job store recorded no trial"
    assert curves_of(result) == one_node.of(service, job_id), "the result differs from the one-node run"
    COUNTS[label] = len(trials)
    print(json.dumps({"store": label, "trials": len(trials), "records": len(records)}))


def test_an_audit_runs_on_a_machine_without_the_apis_disk(cluster: LocalCluster, services: dict[str, Service],
                                                         machine: GroupProcess, checkpoint_source: Path,
                                                         one_node: OneNode, root: Path) -> None:
    """Default ``file://`` store: the machine fetched the checkpoint and the dataset through the gateway into its
    own cache, verified by content; the driver and every trial ran there; the result is the one-node result."""
    run_audit_on_a_machine(cluster, services["default"], checkpoint_source, one_node, "default")
    cached = list((root / "machines" / "m0" / "cache" / "trees").glob("*/*/.complete"))
    assert len(cached) >= 2, f"the machine's cache holds {cached}: expected the checkpoint and the dataset"


def test_an_audit_runs_on_a_machine_through_an_s3_store(cluster: LocalCluster, services: dict[str, Service],
                                                        machine: GroupProcess, checkpoint_source: Path,
                                                        one_node: OneNode, aws: None) -> None:
    """``MLAC_ARTIFACT_URL=s3://...``: the same audit, every artifact through the S3 server; the same result."""
    run_audit_on_a_machine(cluster, services["s3"], checkpoint_source, one_node, "s3")
    from workers.artifacts.store import FsspecStore

    store = FsspecStore(f"s3://{BUCKET}/store")
    assert store.list("objects"), "no content-addressed object reached the S3 store"
    if "default" in COUNTS:
        assert COUNTS["s3"] == COUNTS["default"], COUNTS


def test_a_job_survives_the_loss_of_its_drivers_machine(cluster: LocalCluster, services: dict[str, Service],
                                                        machine: GroupProcess, add_machine: Callable[[], GroupProcess],
                                                        checkpoint_source: Path, one_node: OneNode) -> None:
    """SIGKILL the machine that runs the job's driver mid-audit, then add another machine: Ray restarts the driver
    there (same job id), it resumes from the store, the service follows it, and the job completes with the
    one-node result; every trial result stored exactly once, as many as without the kill."""
    service = services["default"]
    first = nodes_with(cluster, DRIVER_RESOURCE)
    assert len(first) == 1
    with service.client() as c:
        inputs = upload_inputs(service, checkpoint_source)
        job = c.post("/v1/jobs", json={"kind": "audit", **inputs, "preset": "smoke", "audit": AUDIT})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        assert wait_driver(cluster, c, job_id) == first[0]
        deadline = time.monotonic() + 300
        while len(stored_trials(service, job_id)) < 3:
            got = _get(c, f"/v1/jobs/{job_id}")
            assert got["state"] in ("QUEUED", "RUNNING"), f"the job ended before the kill: {got}"
            assert time.monotonic() < deadline, f"no trial finished: {got}"
            time.sleep(0.5)
        progress = _get(c, f"/v1/jobs/{job_id}")["progress"]
        assert (progress.get("studies_done") or 0) < (progress.get("studies_total") or 4), "killed too late"
        before = len(stored_trials(service, job_id))
        machine.kill()  # the raylet, its agents, the driver and the trials on it, at once
        deadline = time.monotonic() + 180  # the GCS marks a killed node dead once its health checks time out
        while nodes_with(cluster, DRIVER_RESOURCE) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert not nodes_with(cluster, DRIVER_RESOURCE), "the killed machine is still reported alive"
        replacement = add_machine()
        second = [n for n in nodes_with(cluster, DRIVER_RESOURCE) if n != first[0]]
        assert len(second) == 1
        restarted_on = wait_driver(cluster, c, job_id, timeout_s=600)
        got = wait_done(c, job_id, 900)
        assert got["state"] == "SUCCEEDED", got.get("error")
        result = _get(c, f"/v1/jobs/{job_id}/result")
    assert restarted_on == second[0], "the restarted driver is not on the new machine"
    assert replacement.alive()
    trials = stored_trials(service, job_id)
    assert sum(t["node_id"] == second[0] for t in trials) >= 1, "no trial ran on the new machine"
    assert sum(t["node_id"] == first[0] for t in trials) >= before, "trials stored before the kill were lost"
    assert curves_of(result) == one_node.of(service, job_id), "the resumed job's result differs from the one-node run"
    if "default" in COUNTS:
        assert len(trials) == COUNTS["default"], (len(trials), COUNTS)
    print(json.dumps({"trials": len(trials), "before_kill": before, "on_new_machine":
                      sum(t["node_id"] == second[0] for t in trials)}))
