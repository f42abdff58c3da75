"""Where Optuna studies live: :func:`open_storage` for a URL, :func:`default_storage_url` of an audit folder,
and :func:`check_study_version` (a study written by another major version of Optuna is refused: its
sampler would not continue the same sequence).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import optuna

from mlac.errors import ConfigError

#: Study user attribute: the Optuna version that created the study.
VERSION_ATTR = "optuna_version"


def default_storage_url(out_dir: Path) -> str:
    """The default storage of an audit folder: a SQLite file ``optuna.db`` in it."""
    return f"sqlite:///{(Path(out_dir) / 'optuna.db').resolve()}"


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """WAL journal and ``synchronous=NORMAL``: a commit no longer waits for an fsync (5x fewer seconds per
    trial on a busy disk); a crashed process still loses nothing that was committed."""
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened before the listener reconnect with it


#: One lock per storage URL: two jobs of one process opening a fresh database at once would both create its tables.
_OPENING: dict[str, threading.Lock] = {}
_OPENING_GUARD = threading.Lock()


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url``, created by one thread of this process at a time; a first attempt that
    lost a creation race to another process (``table ... already exists``) is retried once, finding the tables."""
    with _OPENING_GUARD:
        lock = _OPENING.setdefault(url, threading.Lock())
    with lock:
        for attempt in (1, 2):
            try:
                return optuna.storages.RDBStorage(url)
            except Exception as exc:  # driver missing, bad URL, unreachable server: say which storage failed
                if attempt == 1 and "already exists" in str(exc):
                    time.sleep(0.5)
                    continue
                raise ConfigError(f"cannot open the Optuna storage {url!r}: {exc}") from exc
    raise AssertionError("unreachable")


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna storage for ``url``: None = in memory; any SQLAlchemy URL (``sqlite:///x.db``,
    ``postgresql://...``) or a path ending in ``.db``/``.sqlite`` = Optuna's RDB storage;
    ``journal:PATH`` or a ``.journal``/``.log`` path = a journal file (multi-process safe, no driver)."""
    if url is None or url == "memory":
        return None
    if url.endswith((".db", ".sqlite")) and "://" not in url:
        path = Path(url).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    if url.startswith("journal:") or url.endswith((".journal", ".log")):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" in url:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        storage = _rdb_storage(url)
        if url.startswith("sqlite"):
            _fast_sqlite(storage)
        return storage
    raise ConfigError(f"unknown Optuna storage {url!r}: use a database URL (sqlite:///PATH), a path ending in .db, "
                      "or 'journal:PATH'")


def _major(version: str) -> str:
    return version.split(".", 1)[0]


def check_study_version(study: optuna.Study) -> None:
    """Record the Optuna version on a new study; refuse to continue one written by another major version."""
    stored = study.user_attrs.get(VERSION_ATTR)
    if stored is None:
        if not study.get_trials(deepcopy=False):
            study.set_user_attr(VERSION_ATTR, optuna.__version__)
        return
    if _major(str(stored)) != _major(optuna.__version__):
        raise ConfigError(f"study {study.study_name} was written by Optuna {stored}; this is Optuna "
                          f"{optuna.__version__}, whose sampler would not continue the same sequence: resume it with "
                          f"Optuna {_major(str(stored))}.x, or start a new audit folder / storage")

