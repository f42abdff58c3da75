"""Where the test PostgreSQL is (127.0.0.1:5432, database ``test``, trust auth) and which user reaches it."""

from __future__ import annotations

import os

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"


def pg_user() -> str | None:
    """The first of $MLAC_TEST_PG_USER/postgres/root that can connect to the test database (None: no server)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - declared dependency
        return None
    for user in (os.environ.get("MLAC_TEST_PG_USER"), "postgres", "root"):
        if not user:
            continue
        try:
            with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user, connect_timeout=3):
                return user
        except psycopg.OperationalError:
            continue
    return None
