"""Alembic migrations of the job store (run at start-up by :func:`service.store.migrate.upgrade`)."""
