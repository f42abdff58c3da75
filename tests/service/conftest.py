"""Fixtures of the service tests: a store on each backend, an app with an in-process runner, keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.pg import PG_DB, PG_HOST, PG_PORT
from tests.pg import pg_user as find_pg_user


@pytest.fixture(scope="session")
def pg_user() -> str:
    user = find_pg_user()
    if user is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} (database {PG_DB!r}, trust auth)")
    return user


@pytest.fixture
def pg_url(pg_user: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards; the URL points the search_path at it."""
    import psycopg

    schema = f"mlac_test_{secrets.token_hex(6)}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=pg_user, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    options = quote(f"-csearch_path={schema}")
    yield f"postgresql+psycopg://{pg_user}@{PG_HOST}:{PG_PORT}/{PG_DB}?options={options}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=pg_user, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def store(store_url: str):
    from service.store import get_store

    s = get_store(store_url)
    yield s
    s.close()


ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid tiny BERT checkpoint directory (12 beneficial classes, like the synthetic data)."""
    from mlac.data import SynthConfig, generate_synthetic
    from mlac.models import build_tiny_bert, save_checkpoint

    root = Path(tmp_path_factory.mktemp("ckpt"))
    _, task = generate_synthetic(SynthConfig(n_bios=100, seed=0))
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=0)
    save_checkpoint(model, tok, root / "base", {"seed": 0}, beneficial_names=task.beneficial_names)
    return root / "base"


def checkpoint_files(folder: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart ``files`` of a checkpoint directory."""
    return [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in sorted(folder.iterdir()) if p.is_file()]


def make_settings(tmp_path: Path, **overrides: object):
    from service.settings import Settings

    values: dict[str, object] = {"data_dir": tmp_path / "data", "runner": "inprocess", "admin_key": ADMIN_KEY,
                                 "scheduler_enabled": False, "database_url": None}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[object]:
    """A TestClient on an app with the in-process runner and SQLite under tmp_path (loops running)."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(make_settings(tmp_path))) as c:
        yield c


def auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_key(client, name: str = "user") -> str:
    r = client.post("/v1/keys", json={"name": name}, headers=auth())
    assert r.status_code == 201, r.text
    return str(r.json()["key"])
