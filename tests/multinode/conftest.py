"""Fixtures of the multi-node tests: a fresh PostgreSQL database, a two-node Ray cluster started with
``ray start`` (token auth on), and the service started against both. Module-scoped, each with a finalizer
that stops or drops what it started even when a test fails."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.health import wait_healthy
from tests.multinode.cluster import TRIAL_RESOURCE, GroupProcess, LocalCluster, free_port
from tests.pg import PG_DB, PG_HOST, PG_PORT
from tests.pg import pg_user as find_pg_user

ADMIN = "multinode-admin-key-0123456789"




@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh database ``mlac_mn_<random>`` for this module, dropped at the end."""
    import psycopg

    user = find_pg_user()
    if user is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} (database {PG_DB!r}, users postgres/root, "
                    "trust auth): the multi-node tests need it as DATABASE_URL")
    name = f"mlac_mn_{secrets.token_hex(5)}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Head (1 CPU) advertising :data:`TRIAL_RESOURCE`; the :func:`service` fixture adds the second node once the
    service is attached to the head (with two raylets on one IP a driver may attach to either); stopped at the end."""
    c = LocalCluster(Path(tmp_path_factory.mktemp("mn-cluster")))
    try:
        c.start_head(cpus=1, resources={TRIAL_RESOURCE: 1})
        yield c
    finally:
        c.stop()


class Service:
    """``python -m service serve`` against the cluster and the database, in its own process group."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = GroupProcess([sys.executable, "-m", "service", "serve", "--data-dir", str(data_dir),
                                  "--port", str(self.port)], env, data_dir.parent / "service.log")

    def wait_healthy(self, timeout_s: float = 300) -> None:
        """Block until ``/v1/health`` answers 200."""
        wait_healthy(self.url, self.proc.alive, lambda: "\n" + self.proc.tail(), timeout_s)

    def client(self) -> httpx.Client:
        """An HTTP client with the admin key."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)

    def job_dir(self, job_id: str) -> Path:
        """The job's artifact folder (every node of this one-machine cluster sees the same disk)."""
        return self.data_dir / "artifacts" / "jobs" / job_id


@pytest.fixture(scope="module")
def service(cluster: LocalCluster, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service joined to :func:`cluster` (RAY_ADDRESS + the cluster's token) with DATABASE_URL; stopped at the end."""
    root = Path(tmp_path_factory.mktemp("mn-service"))
    env = {**cluster.env, "RAY_ADDRESS": cluster.address, "DATABASE_URL": database_url, "MLAC_ADMIN_KEY": ADMIN,
           "MLAC_SCHEDULER_ENABLED": "false", "MLAC_RAY_TRIAL_RESOURCES": f'{{"{TRIAL_RESOURCE}": 1}}'}
    svc = Service(root / "data", env)
    try:
        svc.wait_healthy()  # attached to the head, the only raylet yet: the API's node, where job drivers go
        cluster.add_node(cpus=1, resources={TRIAL_RESOURCE: 1})
        yield svc
    finally:
        svc.proc.stop(grace_s=30)


@pytest.fixture(scope="module")
def inputs(service: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny BERT checkpoint and an 800-bio synthetic dataset, uploaded/created through the API."""
    from mlac.data import SynthConfig, generate_synthetic
    from mlac.models import build_tiny_bert, save_checkpoint

    root = Path(tmp_path_factory.mktemp("mn-ckpt"))
    _, task = generate_synthetic(SynthConfig(n_bios=100, seed=0))
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    save_checkpoint(model, tok, root / "base", {"seed": 0}, beneficial_names=task.beneficial_names)
    with service.client() as c:
        files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
                 for p in sorted((root / "base").iterdir()) if p.is_file()]
        ck = c.post("/v1/checkpoints", files=files)
        assert ck.status_code == 201, ck.text
        ds = c.post("/v1/datasets/synthetic", json={"n_bios": 800})
        assert ds.status_code == 201, ds.text
    return {"checkpoint_id": ck.json()["id"], "dataset_id": ds.json()["id"]}

