"""The job store: one interface (:class:`JobStore`), one SQL implementation, picked by URL."""

from service.store.base import JobStore
from service.store.sql import SqlStore, normalize_url


def get_store(url: str, *, run_migrations: bool = True) -> JobStore:
    """The store for ``url``: ``sqlite:///PATH`` (embedded default) or ``postgresql://...`` (psycopg 3).

    Runs the Alembic migrations first (idempotent) unless ``run_migrations`` is False.
    """
    return SqlStore(url, run_migrations=run_migrations)


__all__ = ["JobStore", "SqlStore", "get_store", "normalize_url"]
