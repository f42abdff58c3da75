"""Which artifact store a process opens: :class:`StoreAccess`, plain data handed to job drivers, censor actors and
trials (a Ray argument), and :func:`open_store`.

``url`` is the store (``MLAC_ARTIFACT_URL``; default ``file://<data dir>/artifacts``). ``gateway`` is true for a
store only the API's node reaches (``file://``): processes elsewhere go through :mod:`the gateway actor
<workers.artifacts.gateway>`. Each node keeps its own :class:`~workers.artifacts.cache.NodeCache` (``MLAC_CACHE_DIR``
and ``MLAC_CACHE_MAX_GB`` of that node's environment).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workers.artifacts.store import ArtifactStore, FsspecStore

ARTIFACT_URL_ENV = "MLAC_ARTIFACT_URL"


def artifact_url(artifact_root: Path) -> str:
    """``MLAC_ARTIFACT_URL``, else the ``file://`` URL of ``artifact_root`` (the embedded default)."""
    raw = os.environ.get(ARTIFACT_URL_ENV, "").strip()
    return raw or f"file://{Path(artifact_root).resolve()}"


def is_local_url(url: str) -> bool:
    """Whether ``url`` names a path of one host's file system (``file://`` or a plain path)."""
    return url.startswith("file://") or "://" not in url


@dataclass(frozen=True)
class StoreAccess:
    """How to reach the store from any node (see the module docstring)."""

    url: str
    gateway: bool

    @classmethod
    def for_url(cls, url: str) -> StoreAccess:
        """A local URL goes through the gateway; any other is reached directly."""
        return cls(url=url, gateway=is_local_url(url))

    def to_dict(self) -> dict[str, Any]:
        """Plain form (a Ray argument)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreAccess:
        """Inverse of :meth:`to_dict`."""
        return cls(url=str(data["url"]), gateway=bool(data["gateway"]))


def open_store(access: StoreAccess) -> ArtifactStore:
    """The store as this process reaches it: through the gateway actor, or directly."""
    if access.gateway:
        from workers.artifacts.gateway import GatewayStore

        return GatewayStore(access.url)
    return FsspecStore(access.url)


def scope(access: StoreAccess) -> str:
    """A short name of the store (its URL's hash): node-local working folders are kept apart per store."""
    return hashlib.sha256(FsspecStore.normal_url(access.url).encode()).hexdigest()[:12]
