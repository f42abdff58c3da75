"""Content-addressed checkpoint files: ``<artifact_root>/checkpoints/<checkpoint id>/``, written once, atomically.

A checkpoint's id is :func:`mlac.checkpoint_id.content_id` over every file it stores (weights, config,
tokenizer, provenance), so a directory holds exactly the bytes its name promises, whoever sent them: two
keys' rows share a directory only when their uploads are byte-for-byte identical, and one key's config or
tokenizer can never stand behind another key's row.

A new copy is fsynced in its staging directory and renamed into place, so readers never see a partial
one. An existing copy is re-hashed before it is reused and replaced when it does not match its name.
Placing a copy and inserting its row, like deleting the last row and removing the copy, happen under a
per-id file lock, so a concurrent delete never removes the files of a row being created.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from mlac.checkpoint_id import content_id, dir_files
from mlac.file_lock import file_lock
from service.store import JobStore
from service.store.records import Checkpoint

log = logging.getLogger(__name__)

#: The files a checkpoint consists of (all an upload may hold; all its id covers).
CHECKPOINT_FILES = frozenset({
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
    "merges.txt", "special_tokens_map.json", "added_tokens.json", "provenance.json", "spiece.model",
    "sentencepiece.bpe.model", "generation_config.json",
})


def checkpoints_root(artifact_root: Path) -> Path:
    """Where uploaded checkpoints live, one directory per checkpoint id."""
    return artifact_root / "checkpoints"


def dir_checkpoint(path: str | Path) -> tuple[str, dict[str, str]]:
    """(checkpoint id, name -> sha256) of a checkpoint directory, over its :data:`CHECKPOINT_FILES`.

    A job's output directory gets the id its files would get if they were uploaded.
    """
    files = dir_files(path, CHECKPOINT_FILES)
    return content_id(files), files


@contextmanager
def id_lock(root: Path, checkpoint_id: str) -> Iterator[None]:
    """Exclusive lock on one checkpoint id, across threads and processes of this host (``flock``)."""
    with file_lock(root / ".locks" / f"{checkpoint_id}.lock"):
        yield


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _set_aside(path: Path, why: str) -> Path:
    aside = path.with_name(f".{why}-{path.name}-{secrets.token_hex(4)}")
    os.rename(path, aside)
    return aside


def _holds(folder: Path, files: Mapping[str, str]) -> bool:
    return folder.is_dir() and not folder.is_symlink() and dir_files(folder) == dict(files)


def place(staging: Path, final: Path, files: Mapping[str, str]) -> None:
    """Make ``final`` hold exactly ``files`` (name -> sha256), staged in ``staging`` (consumed either way).

    The caller holds :func:`id_lock` for ``final``'s id.
    """
    if _holds(final, files):
        shutil.rmtree(staging, ignore_errors=True)  # an identical copy is already there
        return
    _durable(staging)
    final.parent.mkdir(parents=True, exist_ok=True)
    stale = None
    if final.exists() or final.is_symlink():
        log.warning("stored checkpoint %s does not match its id: replacing it", final.name)
        stale = _set_aside(final, "stale")
    try:
        os.rename(staging, final)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and _holds(final, files):
            shutil.rmtree(staging, ignore_errors=True)  # placed meanwhile by a process the lock does not reach
            return
        if exc.errno != errno.EXDEV:
            raise
        incoming = final.with_name(f".incoming-{final.name}-{secrets.token_hex(4)}")
        shutil.copytree(staging, incoming)  # staging is on another filesystem: copy next to final first
        _durable(incoming)
        os.rename(incoming, final)
        shutil.rmtree(staging, ignore_errors=True)
    _fsync_dir(final.parent)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


def store_upload(store: JobStore, root: Path, staging: Path, files: Mapping[str, str],
                 row_for: Callable[[str, Path], Checkpoint]) -> tuple[Checkpoint, bool]:
    """Place the staged checkpoint at its content address and insert the uploader's row; (row, created).

    ``row_for(checkpoint_id, final_dir)`` builds the row.
    """
    cid = content_id(files)
    final = root / cid
    with id_lock(root, cid):
        place(staging, final, files)
        return store.add_checkpoint(row_for(cid, final))


def delete_row(store: JobStore, root: Path, checkpoint_id: str, owner: str | None) -> None:
    """Delete the owner's row (admin: every row of the id); remove the stored copy once no row is left."""
    with id_lock(root, checkpoint_id):
        remaining = store.delete_checkpoint(checkpoint_id, owner)
        stored = root / checkpoint_id
        if remaining == 0 and stored.is_dir():
            shutil.rmtree(_set_aside(stored, "deleted"), ignore_errors=True)
