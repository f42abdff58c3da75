"""A job's output folder kept in the store, under ``jobs/<job id>/``, so that whoever runs the job next (a driver Ray
restarted on another node, the service reading the result) finds it there.

:meth:`FolderMirror.push` uploads the files that changed since the last push (by size and mtime); SQLite files
(``*.db``: the default Optuna storage) are copied through SQLite's backup API, so the copy is consistent even
while a study writes. :meth:`FolderMirror.pull` downloads what the local folder lacks or holds in another size.
:meth:`FolderMirror.every` pushes in a background thread while a job runs. With a ``file://`` store the service's
own folder *is* the store's, and then :func:`same_place` tells the service that there is nothing to pull.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from workers.artifacts.store import ArtifactStore, FsspecStore, read_to_file, write_file

log = logging.getLogger(__name__)
#: SQLite's files beside a database: never pushed (the backup copy is whole), removed when the database is pulled.
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def job_prefix(job_id: str) -> str:
    """Where a job's folder lives in the store."""
    return f"jobs/{job_id}"


def same_place(store: ArtifactStore, prefix: str, local: Path) -> bool:
    """Whether ``local`` is the store's own folder for ``prefix`` (a local store): nothing to copy."""
    if not (isinstance(store, FsspecStore) and store.local):
        return False
    return Path(store.root, prefix).resolve() == Path(local).resolve()


class FolderMirror:
    """One local folder and its place in the store; ``exclude`` names top-level entries kept out of it."""

    def __init__(self, store: ArtifactStore, prefix: str, local: Path, exclude: tuple[str, ...] = ()) -> None:
        self.store, self.prefix, self.local, self.exclude = store, prefix.rstrip("/"), Path(local), exclude
        self._pushed: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        if not self.local.is_dir():
            return []
        out = []
        for p in sorted(self.local.rglob("*")):
            rel = p.relative_to(self.local)
            if rel.parts[0] in self.exclude or any(part.startswith(".") for part in rel.parts):
                continue
            if p.is_file() and not p.is_symlink() and not p.name.endswith(SQLITE_SIDE_FILES):
                out.append(p)
        return out

    def push(self) -> int:
        """Upload what changed; returns how many files went up."""
        if same_place(self.store, self.prefix, self.local):
            return 0
        sent = 0
        with self._lock:
            for path in self._files():
                st = path.stat()
                rel = path.relative_to(self.local).as_posix()
                if self._pushed.get(rel) == (st.st_size, st.st_mtime_ns):
                    continue
                key = f"{self.prefix}/{rel}"
                if path.suffix == ".db":
                    self._push_sqlite(path, key)
                else:
                    write_file(self.store, key, path)
                self._pushed[rel] = (st.st_size, st.st_mtime_ns)
                sent += 1
        return sent

    def _push_sqlite(self, path: Path, key: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / path.name
            src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
            write_file(self.store, key, copy)

    def pull(self) -> int:
        """Download what the local folder lacks (or holds in another size); returns how many files came down."""
        if same_place(self.store, self.prefix, self.local):
            return 0
        got = 0
        for key in self.store.list(self.prefix):
            rel = key[len(self.prefix) + 1:]
            if not rel or rel.split("/")[0] in self.exclude:
                continue
            target = self.local / rel
            size = self.store.size(key)
            if target.is_file() and target.stat().st_size == size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".pull-{target.name}")
            read_to_file(self.store, key, tmp)
            for side in SQLITE_SIDE_FILES:  # a stale journal beside a replaced database would corrupt it
                target.with_name(target.name + side).unlink(missing_ok=True)
            tmp.replace(target)
            st = target.stat()
            self._pushed[rel] = (st.st_size, st.st_mtime_ns)
            got += 1
        return got

    @contextlib.contextmanager
    def every(self, interval_s: float) -> Iterator[None]:
        """Push every ``interval_s`` seconds in a daemon thread while the block runs, and once more at its end."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                try:
                    self.push()
                except Exception:  # a failed push is retried at the next one; the final push raises
                    log.exception("pushing %s to the artifact store failed", self.prefix)

        thread = threading.Thread(target=loop, name=f"mirror-{self.prefix}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.push()
