"""Database passwords never travel in Ray actor arguments: drivers get the URL without it and libpq finds it.

A PostgreSQL ``DATABASE_URL`` with a password would otherwise be part of every job driver's constructor
arguments, which Ray keeps in its control store and shows in the dashboard. :func:`driver_storage_url`
strips the password and writes it to a pgpass file (0600, under the data directory) that ``PGPASSFILE``
names; the embedded Ray's workers inherit that variable from the service process. On a remote cluster,
give each node the password the same way (``PGPASSFILE`` or ``PGPASSWORD`` in the node's environment).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

PGPASS_NAME = "pgpass"


def _pgpass_field(value: str) -> str:
    """Escape ``\\`` and ``:`` as the pgpass format requires."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def driver_storage_url(url: str | None, secrets_dir: Path) -> str | None:
    """``url`` without its password; a password goes to ``<secrets_dir>/pgpass`` and ``PGPASSFILE`` points at it.

    URLs without a password (trust or peer auth, SQLite) are returned unchanged.
    """
    if url is None:
        return None
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgresql") or not parsed.password:
        return url
    secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = secrets_dir / PGPASS_NAME
    line = ":".join(_pgpass_field(str(v)) for v in (parsed.host or "localhost", parsed.port or 5432,
                                                     parsed.database or "*", parsed.username or "*", parsed.password))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(line + "\n")
    os.chmod(path, 0o600)  # libpq ignores a pgpass file that others can read
    os.environ["PGPASSFILE"] = str(path)
    return parsed._replace(password=None).render_as_string(hide_password=False)  # .set() cannot clear it
