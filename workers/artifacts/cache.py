"""A node-local cache of trees: ``<root>/trees/<tree id>/<folder>/``, fetched once per node, hash-verified, size-bounded.

Safe under concurrent trials: one fetch per tree at a time (``flock`` on ``<root>/.locks/<tree id>-<folder>``, across the
processes of a node), files staged in a private folder, every blob's sha256 checked against the manifest, and the
folder renamed into place whole, so a reader sees a complete tree or none. A ``.complete`` marker, touched on every
use, orders trees by last use; after a fetch, trees idle for at least ``min_idle_s`` are removed, least recently used
first, until the cache fits ``max_bytes`` (a tree in use is never removed: it was touched when its user took it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from mlac.file_lock import file_lock
from workers.artifacts.refs import ArtifactRef
from workers.artifacts.store import ArtifactError, ArtifactStore, read_to_file
from workers.artifacts.trees import blob_key, read_tree

MARKER = ".complete"
#: Default bound of a node's cache (``MLAC_CACHE_MAX_GB`` overrides it).
DEFAULT_MAX_BYTES = 20 * 1024**3
CACHE_DIR_ENV, CACHE_MAX_ENV = "MLAC_CACHE_DIR", "MLAC_CACHE_MAX_GB"


def default_cache_dir() -> Path:
    """This node's cache folder: ``MLAC_CACHE_DIR``, else ``<system temp>/mlac-cache-<uid>``."""
    raw = os.environ.get(CACHE_DIR_ENV)
    return Path(raw) if raw else Path(tempfile.gettempdir()) / f"mlac-cache-{os.getuid()}"


def default_max_bytes() -> int:
    """``MLAC_CACHE_MAX_GB`` in bytes, else :data:`DEFAULT_MAX_BYTES`."""
    raw = os.environ.get(CACHE_MAX_ENV)
    try:
        return int(float(raw) * 1024**3) if raw else DEFAULT_MAX_BYTES
    except ValueError as exc:
        raise ArtifactError(f"{CACHE_MAX_ENV}={raw!r} is not a number of GiB") from exc


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class NodeCache:
    """See the module docstring. ``fetched`` and ``hits`` count this object's work (benchmarks, tests)."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None, min_idle_s: float = 600.0) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else default_max_bytes()
        self.min_idle_s = min_idle_s
        self.fetched = 0
        self.hits = 0

    @property
    def trees_dir(self) -> Path:
        """Where materialised trees are."""
        return self.root / "trees"

    def ref_of(self, path: str | Path) -> ArtifactRef | None:
        """The reference of ``path`` when it lies in a cached tree, else None."""
        try:
            rel = Path(path).resolve().relative_to(self.trees_dir.resolve())
        except ValueError:
            return None
        parts = rel.parts
        if len(parts) < 2 or not (self.trees_dir / parts[0] / parts[1] / MARKER).is_file():
            return None
        return ArtifactRef(parts[0], parts[1], "/".join(parts[2:]) or None)

    def path_of(self, store: ArtifactStore, ref: ArtifactRef) -> Path:
        """The local path of ``ref`` (its tree fetched unless already here)."""
        folder = self.materialise(store, ref.tree_id, ref.folder)
        return folder / ref.file if ref.file else folder

    def materialise(self, store: ArtifactStore, tree_id: str, folder: str) -> Path:
        """The local folder ``<tree id>/<folder>``, fetched from ``store`` unless already here."""
        final = self.trees_dir / tree_id / folder
        if (final / MARKER).is_file():
            os.utime(final / MARKER)
            self.hits += 1
            return final
        with file_lock(self.root / ".locks" / f"{tree_id}-{folder}.lock"):
            if (final / MARKER).is_file():
                os.utime(final / MARKER)
                self.hits += 1
                return final
            self._fetch(store, tree_id, final)
            self.fetched += 1
        self.evict(keep=final)
        return final

    def _fetch(self, store: ArtifactStore, tree_id: str, final: Path) -> None:
        tree = read_tree(store, tree_id)
        staging = self.root / ".staging" / f"{tree_id}-{secrets.token_hex(4)}" / final.name
        staging.mkdir(parents=True)
        try:
            for name, (sha, size) in tree.files.items():
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                read_to_file(store, blob_key(sha), target)
                if target.stat().st_size != size or sha256_of(target) != sha:
                    raise ArtifactError(f"tree {tree_id[:12]}: {name} does not match its sha256 (corrupted or "
                                        "tampered artifact store)")
            (staging / MARKER).write_text(str(tree.size), encoding="utf-8")
            if final.exists():  # an incomplete leftover (no marker): set aside
                shutil.rmtree(final, ignore_errors=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging.parent, ignore_errors=True)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of every complete tree."""
        out = []
        for marker in self.trees_dir.glob(f"*/*/{MARKER}"):
            folder = marker.parent
            if not folder.name.startswith(".") and not folder.parent.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    out.append((marker.stat().st_mtime, _tree_bytes(folder), folder))
        return out

    def evict(self, keep: Path | None = None) -> int:
        """Remove idle trees, least recently used first, until the cache fits; returns how many were removed."""
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        removed, now = 0, time.time()
        for used, size, folder in entries:
            if total <= self.max_bytes:
                break
            if folder == keep or now - used < self.min_idle_s:
                continue
            with file_lock(self.root / ".locks" / f"{folder.parent.name}-{folder.name}.lock"):
                aside = folder.with_name(f".evicted-{folder.name}-{secrets.token_hex(4)}")
                with contextlib.suppress(FileNotFoundError):
                    os.rename(folder, aside)
                    shutil.rmtree(aside, ignore_errors=True)
                    total -= size
                    removed += 1
        return removed
