"""The Ray runner on a PostgreSQL job store keeps the audit's Optuna studies in that database (issue 5:
"Optuna studies in the same database"), not in a per-job ``audit/optuna.db``.

``python -m service serve`` in a subprocess with ``DATABASE_URL`` pointing at a fresh schema of the test
PostgreSQL (127.0.0.1:5432, database ``test``, trust auth) and a real local Ray; skipped only where no
PostgreSQL server answers.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.server import ADMIN, Server, free_port
from tests.pg import PG_DB, PG_HOST, PG_PORT, pg_user

from .test_service_e2e import _get

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]
PG = {"host": PG_HOST, "port": PG_PORT, "dbname": PG_DB}


@pytest.fixture
def pg_schema_url(monkeypatch: pytest.MonkeyPatch):
    import psycopg

    user = pg_user()
    if user is None:
        pytest.skip("no PostgreSQL server answers at 127.0.0.1:5432 (database 'test', trust auth)")
    schema = f"mlac_e2e_{secrets.token_hex(6)}"
    with psycopg.connect(**PG, user=user, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql://{user}@{PG['host']}:{PG['port']}/{PG['dbname']}?options={quote(f'-csearch_path={schema}')}"
    monkeypatch.setenv("DATABASE_URL", url)  # the server subprocess inherits it
    yield url
    with psycopg.connect(**PG, user=user, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_ray_audit_keeps_its_studies_in_the_postgres_store(tmp_path: Path, tiny_checkpoint_dir: Path,
                                                         pg_schema_url: str) -> None:
    import optuna

    server = Server(tmp_path / "data", free_port())
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as c:
            assert _get(c, "/v1/health")["store"] == "postgresql"
            files = [("files", (p.name, p.read_bytes(), "application/octet-stream"))
                     for p in sorted(tiny_checkpoint_dir.iterdir()) if p.is_file()]
            ck = c.post("/v1/checkpoints", files=files).json()["id"]
            ds = c.post("/v1/datasets/synthetic", json={"n_bios": 400}).json()["id"]
            r = c.post("/v1/jobs", json={"kind": "audit", "dataset_id": ds, "checkpoint_id": ck, "preset": "smoke",
                                         "audit": {"sizes": [20], "seeds": [0], "baselines": ["random"]}})
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
            deadline = time.monotonic() + 600
            while (job := _get(c, f"/v1/jobs/{job_id}"))["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
                assert time.monotonic() < deadline, job
                time.sleep(1)
            assert job["state"] == "SUCCEEDED", job["error"]
            trials = _get(c, f"/v1/jobs/{job_id}/trials")
    finally:
        server.stop()
        server.kill()
    sa_url = pg_schema_url.replace("postgresql://", "postgresql+psycopg://", 1)
    summaries = optuna.get_all_study_summaries(sa_url)
    assert summaries, "no Optuna study in the PostgreSQL job store"
    assert trials and sum(s.n_trials for s in summaries) >= len(trials)
    assert not list((tmp_path / "data").rglob("optuna.db")), "the Ray driver kept its studies in a SQLite file"
