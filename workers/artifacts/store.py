"""One small interface to wherever artifacts live, on ``fsspec``: ``file://`` (the embedded default, the data
directory), ``s3://`` (through ``s3fs``) and whatever else fsspec serves.

Keys are relative, ``/``-separated paths (``objects/sha256/ab/ab12...``, ``jobs/<id>/audit/result.json``); a key
with ``..``, a leading ``/`` or a control character is refused. Writes are whole objects; on a local file system
they are atomic (a temporary file renamed into place), on an object store a PUT is atomic by itself.

Credentials and endpoints of object stores come from the environment the way their libraries read it
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` for S3 and S3-compatible servers); no
secret is ever part of the URL the service stores or passes to Ray.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from mlac.errors import MlacError

_KEY = re.compile(r"[A-Za-z0-9._=+@,-]+(/[A-Za-z0-9._=+@,-]+)*")


class ArtifactError(MlacError):
    """The artifact store refused, lost or corrupted an object (a clear, one-line cause)."""

    code = "artifact"


def check_key(key: str) -> str:
    """``key`` if it is a plain relative key, else ArtifactError."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise ArtifactError(f"not a plain artifact key: {key!r}")
    return key


class ArtifactStore(Protocol):
    """What every store offers (and what the gateway serves)."""

    def read(self, key: str) -> bytes:
        """The object's bytes (ArtifactError when absent)."""

    def write(self, key: str, data: bytes) -> None:
        """Create or replace the object."""

    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (recursive, sorted)."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes, None when absent."""

    def describe(self) -> str:
        """Where the store is (for logs and errors; never a secret)."""


def _strip_secret(url: str) -> str:
    """``url`` without a ``user:password@`` part."""
    return re.sub(r"//[^/@]*@", "//", url)


class FsspecStore:
    """An :class:`ArtifactStore` on any fsspec URL (``file:///srv/mlac/artifacts``, ``s3://bucket/prefix``).

    A plain path is a ``file://`` URL. ``storage_options`` go to the file system (tests give S3 endpoints
    here; deployments use the environment)."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec

        self.url = self.normal_url(url)
        # A file system reads credentials and endpoint from the environment when it is made; fsspec's instance cache
        # would hand back one made under an earlier environment (rotated keys, another endpoint).
        storage_options.setdefault("skip_instance_cache", True)
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        except (ImportError, ValueError) as exc:
            raise ArtifactError(f"cannot open the artifact store {_strip_secret(self.url)}: {exc}") from exc
        self.root = root.rstrip("/")
        self.local = self.fs.protocol in ("file", "local") or "file" in tuple(self.fs.protocol)
        if self.local:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ArtifactError(f"cannot open the artifact store {self.url}: {exc.strerror or exc}") from exc

    @staticmethod
    def normal_url(url: str) -> str:
        """``url`` with a plain path as an absolute ``file://`` URL."""
        if "://" not in url:
            return f"file://{Path(url).resolve()}"
        if url.startswith("file://"):
            return f"file://{Path(url.removeprefix('file://')).resolve()}"
        return url

    def describe(self) -> str:
        """The URL without credentials."""
        return _strip_secret(self.url)

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def read(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._path(key)))
        except FileNotFoundError as exc:
            raise ArtifactError(f"artifact {key} is not in {self.describe()}") from exc

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if not self.local:
            self.fs.pipe_file(path, data)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def write_file(self, key: str, source: Path, *, link: bool = False) -> None:
        """Store the file ``source`` as ``key`` without reading it into memory; ``link`` (for immutable files
        only) hard-links instead of copying on a local store of the same file system."""
        path = self._path(key)
        if not self.local:
            self.fs.put_file(str(source), path)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            if link:
                try:
                    os.link(source, tmp)
                except OSError:
                    shutil.copyfile(source, tmp)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def read_to_file(self, key: str, target: Path) -> None:
        """Copy the object ``key`` into the local file ``target`` (streamed)."""
        try:
            self.fs.get_file(self._path(key), str(target))
        except FileNotFoundError as exc:
            raise ArtifactError(f"artifact {key} is not in {self.describe()}") from exc

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int | None:
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError:
            return None

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.strip("/")) if prefix.strip("/") else self.root
        with contextlib.suppress(AttributeError):
            self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root.lstrip("/") if not self.local else self.root
        out = []
        for path in found:
            rel = str(path)[len(root):].lstrip("/") if str(path).startswith(root) else str(path)
            name = rel.rsplit("/", 1)[-1]
            if not name.startswith(".tmp-"):
                out.append(rel)
        return sorted(out)


def read_to_file(store: ArtifactStore, key: str, target: Path) -> None:
    """Copy ``key`` into ``target``: streamed where the store can, else through memory."""
    if isinstance(store, FsspecStore):
        store.read_to_file(key, target)
    else:
        target.write_bytes(store.read(key))


def write_file(store: ArtifactStore, key: str, source: Path, *, link: bool = False) -> None:
    """Store the local file ``source`` as ``key`` (see :meth:`FsspecStore.write_file`)."""
    if isinstance(store, FsspecStore):
        store.write_file(key, source, link=link)
    else:
        store.write(key, source.read_bytes())
