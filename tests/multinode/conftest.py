"""Fixtures of the multi-node tests: separate machines on one machine.

The head node is the API's machine: the services run beside it, attached to it before any other node joins (with
several raylets on one IP a process may attach to any of them), and everything of that host lives under
:func:`api_dir` (the services' data directories, the uploaded checkpoint's source, the head's artifact cache).
Every further node is a *machine* (:func:`add_machine`): a raylet in its own mount namespace with a tmpfs over
:func:`api_dir` and over the other machines' folders, so that it reads nothing of the API's disk and keeps its own
cache (``MLAC_CACHE_DIR``). Only machines advertise the trial and the driver resources, so every trial and every
job driver runs on one. A local S3 server (moto) on loopback serves the ``s3://`` store; every node gets its
endpoint and keys in its environment, as a real cluster's nodes would. PostgreSQL keeps each service's jobs.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.health import wait_healthy
from tests.multinode.cluster import (
    TRIAL_RESOURCE,
    GroupProcess,
    LocalCluster,
    free_port,
    mount_namespace_refusal,
)
from tests.pg import PG_DB, PG_HOST, PG_PORT
from tests.pg import pg_user as find_pg_user
from tests.s3 import s3_server

ADMIN = "multinode-admin-key-0123456789"
#: The custom resource job drivers ask for (``MLAC_RAY_DRIVER_RESOURCES``): only the machines have it.
DRIVER_RESOURCE = "mlac_driver"
BUCKET = "mlac-multinode"


class Service:
    """``python -m service serve`` against the cluster and its own database, in its own process group."""

    def __init__(self, data_dir: Path, env: dict[str, str], database_url: str) -> None:
        self.data_dir, self.port, self.database_url = data_dir, free_port(), database_url
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = GroupProcess([sys.executable, "-m", "service", "serve", "--data-dir", str(data_dir),
                                  "--port", str(self.port)], env, data_dir.parent / "service.log")

    def wait_healthy(self, timeout_s: float = 300) -> None:
        """Block until ``/v1/health`` answers 200."""
        wait_healthy(self.url, self.proc.alive, lambda: "\n" + self.proc.tail(), timeout_s)

    def client(self) -> httpx.Client:
        """An HTTP client with the admin key."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)


def _pg_user() -> str:
    user = find_pg_user()
    if user is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} (database {PG_DB!r}, users postgres/root, "
                    "trust auth): the multi-node tests need it as DATABASE_URL")
    return user


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's folder: ``api/`` (the API's host), ``machines/<name>/`` (one per machine), ``cluster/``."""
    return Path(tmp_path_factory.mktemp("mn"))


@pytest.fixture(scope="module")
def api_dir(root: Path) -> Path:
    """Everything of the API's host; no machine can see it."""
    path = root / "api"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def s3_env(root: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server on loopback with :data:`BUCKET`; yields the AWS environment that points at it."""
    with s3_server(BUCKET, log=root / "moto.log") as env:
        yield env


@pytest.fixture(scope="module")
def cluster(root: Path, api_dir: Path, s3_env: dict[str, str]) -> Iterator[LocalCluster]:
    """The head (the API's machine, 1 CPU, no trial or driver resource); skipped, saying why, where the kernel
    refuses the mount namespace the machines need."""
    refusal = mount_namespace_refusal(root)
    if refusal is not None:
        pytest.skip(f"separate machines need a mount namespace: {refusal}")
    c = LocalCluster(root / "cluster")
    c.env.update({**s3_env, "MLAC_CACHE_DIR": str(api_dir / "cache")})
    try:
        c.start_head(cpus=1)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def add_machine(cluster: LocalCluster, root: Path, api_dir: Path) -> Callable[[], GroupProcess]:
    """Start a further machine (2 CPUs, the trial and the driver resources) that sees neither :func:`api_dir`
    nor the other machines' folders; returns its node process."""

    def add() -> GroupProcess:
        machines = root / "machines"
        others = sorted(p for p in machines.iterdir()) if machines.exists() else []
        own = machines / f"m{len(others)}"
        (own / "cache").mkdir(parents=True)
        return cluster.add_node(cpus=2, resources={TRIAL_RESOURCE: 2, DRIVER_RESOURCE: 4}, hidden=[api_dir, *others],
                                env={"MLAC_CACHE_DIR": str(own / "cache")})

    return add


def _create_database(user: str) -> str:
    import psycopg

    name = f"mlac_mn_{secrets.token_hex(5)}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(user: str, name: str) -> None:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def services(cluster: LocalCluster, api_dir: Path, s3_env: dict[str, str]) -> Iterator[dict[str, Service]]:
    """Two services on the head, each with its own fresh database: ``default`` (the ``file://`` store in its data
    directory, served to the machines by the gateway actor) and ``s3`` (``MLAC_ARTIFACT_URL=s3://...``). Started
    before any machine joins, so that both attach to the head; stopped and their databases dropped at the end."""
    user = _pg_user()
    base = {**cluster.env, "RAY_ADDRESS": cluster.address, "MLAC_ADMIN_KEY": ADMIN, "MLAC_SCHEDULER_ENABLED": "false",
            "MLAC_RAY_TRIAL_RESOURCES": f'{{"{TRIAL_RESOURCE}": 1}}',
            "MLAC_RAY_DRIVER_RESOURCES": f'{{"{DRIVER_RESOURCE}": 1}}'}
    stores = {"default": {}, "s3": {"MLAC_ARTIFACT_URL": f"s3://{BUCKET}/store"}}
    started: dict[str, Service] = {}
    names: list[str] = []
    try:
        for label, extra in stores.items():
            names.append(_create_database(user))
            url = f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{names[-1]}"
            started[label] = Service(api_dir / label / "data", {**base, **extra, "DATABASE_URL": url}, url)
        for svc in started.values():
            svc.wait_healthy()
        yield started
    finally:
        for svc in started.values():
            svc.proc.stop(grace_s=30)
        for name in names:
            _drop_database(user, name)


def upload_inputs(service: Service, source: Path) -> dict[str, str]:
    """Upload the tiny checkpoint at ``source`` and create an 800-bio synthetic dataset through the API."""
    with service.client() as c:
        files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
                 for p in sorted(source.iterdir()) if p.is_file()]
        ck = c.post("/v1/checkpoints", files=files)
        assert ck.status_code in (200, 201), ck.text  # 200: the same checkpoint uploaded before
        ds = c.post("/v1/datasets/synthetic", json={"n_bios": 800})
        assert ds.status_code == 201, ds.text
    return {"checkpoint_id": ck.json()["id"], "dataset_id": ds.json()["id"]}


@pytest.fixture(scope="module")
def checkpoint_source(api_dir: Path) -> Path:
    """A tiny BERT checkpoint on the API's host (what a user uploads)."""
    from mlac.data import SynthConfig, generate_synthetic
    from mlac.models import build_tiny_bert, save_checkpoint

    _, task = generate_synthetic(SynthConfig(n_bios=100, seed=0))
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    save_checkpoint(model, tok, api_dir / "upload" / "base", {"seed": 0}, beneficial_names=task.beneficial_names)
    return api_dir / "upload" / "base"
