"""A checkpoint's content id: sha256 over a canonical manifest of its (file name, file sha256) pairs.

The weights alone do not determine a model: ``config.json`` (activation, pooling, sizes) and the
tokenizer files change what it computes. Whatever is keyed by a checkpoint (the service's storage and
ids, the workers' feature and tokenisation caches) is keyed by this id, so that two directories with the
same weights but another config or tokenizer never stand in for each other.

The manifest is ``mlac-checkpoint-manifest/1`` then one ``<sha256>  <name>`` line per file, sorted by
name (``sha256sum`` format); names are plain file names (no path separator, no control character), so
the manifest reads back unambiguously.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from pathlib import Path

from mlac.models.provenance import sha256_file

MANIFEST_HEADER = "mlac-checkpoint-manifest/1\n"
_NAME = re.compile(r"(?!\.\.?\Z)[^/\\\x00-\x1f\x7f]{1,255}")
_SHA = re.compile(r"[0-9a-f]{64}")


def manifest(files: Mapping[str, str]) -> bytes:
    """The canonical manifest of ``files`` (name -> hex sha256); ValueError for a name or hash that is not plain."""
    if not files:
        raise ValueError("a checkpoint manifest needs at least one file")
    for name, sha in files.items():
        if not _NAME.fullmatch(name) or not _SHA.fullmatch(sha):
            raise ValueError(f"not a plain file name and lowercase hex sha256: {name!r}, {sha!r}")
    return (MANIFEST_HEADER + "".join(f"{files[name]}  {name}\n" for name in sorted(files))).encode()


def content_id(files: Mapping[str, str]) -> str:
    """The checkpoint id of ``files`` (name -> hex sha256): hex sha256 of :func:`manifest`."""
    return hashlib.sha256(manifest(files)).hexdigest()


def dir_files(path: str | Path, names: Collection[str] | None = None,
              known: Mapping[str, str] | None = None) -> dict[str, str]:
    """name -> sha256 of the regular files directly in ``path`` (only ``names`` when given).

    ``known`` supplies hashes already computed from these very files (e.g. the weights' sha256 that
    loading computed), so that large files are not read twice.
    """
    known = known or {}
    out: dict[str, str] = {}
    for p in sorted(Path(path).iterdir()):
        if p.is_file() and not p.is_symlink() and (names is None or p.name in names):
            out[p.name] = known.get(p.name) or sha256_file(p)
    return out


def dir_content_id(path: str | Path, names: Collection[str] | None = None,
                   known: Mapping[str, str] | None = None) -> str:
    """The checkpoint id of the directory ``path`` (see :func:`dir_files` for ``names`` and ``known``)."""
    return content_id(dir_files(path, names, known))
