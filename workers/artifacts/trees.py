"""Directories by content: every file is a blob at ``objects/sha256/<ab>/<sha256>`` and the directory is a manifest
at ``trees/<tree id>.json`` (relative name -> sha256; the tree id is the sha256 of the manifest's canonical JSON).

Immutable and deduplicated: the same bytes are stored once whoever publishes them, and a tree id names exactly
one set of bytes, so a reader that verifies the hashes can never be handed another model or dataset. The
manifest is written after its blobs: a manifest that exists implies that its blobs do.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlac.models.provenance import sha256_file
from workers.artifacts.store import ArtifactError, ArtifactStore, FsspecStore, check_key, write_file

MANIFEST_FORMAT = "mlac-tree/1"


def blob_key(sha256: str) -> str:
    """Where the blob with this sha256 lives."""
    return f"objects/sha256/{sha256[:2]}/{sha256}"


def tree_key(tree_id: str) -> str:
    """Where the manifest of this tree lives."""
    return f"trees/{tree_id}.json"


@dataclass(frozen=True)
class Tree:
    """A directory's content: relative file name -> (sha256, size)."""

    files: Mapping[str, tuple[str, int]]

    def manifest(self) -> bytes:
        """Canonical JSON (sorted names): what the id hashes and the store keeps."""
        body = {"format": MANIFEST_FORMAT, "files": {n: {"sha256": s, "size": z} for n, (s, z) in sorted(self.files.items())}}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @property
    def tree_id(self) -> str:
        """sha256 of :meth:`manifest`."""
        return hashlib.sha256(self.manifest()).hexdigest()

    @property
    def size(self) -> int:
        """Total bytes of the files."""
        return sum(z for _, z in self.files.values())

    @classmethod
    def parse(cls, data: bytes, tree_id: str) -> Tree:
        """A manifest read back; ArtifactError unless it hashes to ``tree_id`` and is well formed."""
        if hashlib.sha256(data).hexdigest() != tree_id:
            raise ArtifactError(f"tree {tree_id[:12]}: its manifest does not hash to its id (corrupted store)")
        try:
            body = json.loads(data)
            files = {str(n): (str(v["sha256"]), int(v["size"])) for n, v in body["files"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"tree {tree_id[:12]}: unreadable manifest ({exc})") from exc
        for name in files:
            check_key(name)
        return cls(files)


def _members(path: Path, names: frozenset[str] | None) -> list[Path]:
    """The regular files of the tree at ``path``: all below it (recursive), or only the top-level ``names``;
    hidden files and symlinks left out."""
    found = sorted(path.rglob("*")) if names is None else sorted(path / n for n in names)
    out = []
    for p in found:
        rel = p.relative_to(path)
        if any(part.startswith(".") for part in rel.parts) or p.is_symlink() or not p.is_file():
            continue
        out.append(p)
    return out


def scan_dir(path: Path, names: frozenset[str] | None = None) -> Tree:
    """The tree of :func:`_members` of ``path``."""
    files: dict[str, tuple[str, int]] = {}
    for p in _members(path, names):
        files[p.relative_to(path).as_posix()] = (sha256_file(p), p.stat().st_size)
    if not files:
        raise ArtifactError(f"{path.name}: nothing to publish (no files)")
    return Tree(files)


def _signature(path: Path, names: frozenset[str] | None) -> tuple[tuple[str, int, int], ...]:
    """What tells a changed tree from an unchanged one without reading it (names, sizes, mtimes)."""
    out = []
    for p in _members(path, names):
        st = p.stat()
        out.append((p.relative_to(path).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(out)


def companions(file: Path) -> frozenset[str]:
    """``file`` and the files beside it that belong to it, those named ``<its stem>.<anything>`` (a dataset's
    ``data.parquet`` and its ``data.task.json``): what is published for a single file, not its whole folder."""
    prefix = file.stem + "."
    return frozenset(p.name for p in file.parent.iterdir()
                     if p.is_file() and (p.name == file.name or p.name.startswith(prefix)))


class TreePublisher:
    """Publishes local directories as trees, remembering what it published (by path and file signature) so that a
    directory is hashed and uploaded once per process, however many trials name it. Thread-safe."""

    def __init__(self, store: ArtifactStore, *, link: bool = False) -> None:
        self.store, self.link = store, link
        self._known: dict[str, tuple[tuple[tuple[str, int, int], ...], str]] = {}
        self._lock = threading.Lock()

    def publish(self, path: str | Path, names: frozenset[str] | None = None) -> str:
        """The tree id of the directory ``path`` (only its top-level files ``names`` if given), after its blobs and
        manifest are in the store."""
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise ArtifactError(f"cannot publish {folder.name}: not a directory")
        signature = _signature(folder, names)
        memo = f"{folder}\0{','.join(sorted(names)) if names is not None else '*'}"
        with self._lock:
            known = self._known.get(memo)
            if known is not None and known[0] == signature:
                return known[1]
            tree = scan_dir(folder, names)
            tree_id = tree.tree_id
            if not self.store.exists(tree_key(tree_id)):
                for name, (sha, _size) in tree.files.items():
                    if not self.store.exists(blob_key(sha)):
                        write_file(self.store, blob_key(sha), folder / name, link=self.link)
                self.store.write(tree_key(tree_id), tree.manifest())
            self._known[memo] = (signature, tree_id)
            return tree_id


def read_tree(store: ArtifactStore, tree_id: str) -> Tree:
    """The manifest of ``tree_id`` from the store, verified."""
    if not store.exists(tree_key(tree_id)):
        raise ArtifactError(f"tree {tree_id[:12]} is not in the artifact store {store.describe()}")
    return Tree.parse(store.read(tree_key(tree_id)), tree_id)


def local_link_ok(store: ArtifactStore) -> bool:
    """Whether publishing may hard-link files into ``store`` (a local store, on this host's disk)."""
    return isinstance(store, FsspecStore) and store.local and os.name == "posix"
