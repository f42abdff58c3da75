"""A store that only the API's node can reach (the ``file://`` default), served to every node through Ray.

:class:`StoreGateway` is one named, detached actor per store (``mlac-artifact-gateway-<hash of its URL>``) placed
on the API's node with hard
node affinity: that node holds the files, so the actor has to run there. It coordinates only (no CPUs) and
answers many calls at once. :class:`GatewayStore` is the :class:`~workers.artifacts.store.ArtifactStore` that
drivers, censor actors and trials on any node use to reach it: bytes travel through Ray's object store, so no
process off the API's node ever opens one of its paths. With an object store (``s3://``) there is no gateway:
every node talks to the store itself.
"""

from __future__ import annotations

import hashlib
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from workers.artifacts.store import ArtifactError, FsspecStore

GATEWAY_PREFIX = "mlac-artifact-gateway"
NAMESPACE = "mlac-audit"
#: Calls the gateway answers at once (fetches of several nodes overlap).
GATEWAY_CONCURRENCY = 16


def gateway_name(url: str) -> str:
    """The actor name of the gateway of the store at ``url`` (one per store: services with other data
    directories on one cluster keep their own)."""
    return f"{GATEWAY_PREFIX}-{hashlib.sha256(FsspecStore.normal_url(url).encode()).hexdigest()[:12]}"


class StoreGateway:
    """Plain logic of the gateway actor: :class:`FsspecStore` methods on the API node's store."""

    def __init__(self, url: str) -> None:
        self.store = FsspecStore(url)

    def url(self) -> str:
        """The URL it serves (to tell a stale gateway from the right one)."""
        return self.store.url

    def read(self, key: str) -> bytes:
        return self.store.read(key)

    def write(self, key: str, data: bytes) -> None:
        self.store.write(key, data)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def list(self, prefix: str) -> list[str]:
        return self.store.list(prefix)

    def size(self, key: str) -> int | None:
        return self.store.size(key)


def start_gateway(url: str) -> Any:
    """The gateway actor for ``url`` on this process's node (created, or the running one reused); returns its
    handle."""
    cls = ray.remote(max_restarts=-1, max_task_retries=3, max_concurrency=GATEWAY_CONCURRENCY)(StoreGateway)  # type: ignore[call-overload]  # stubs lack max_concurrency
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    handle = cls.options(name=gateway_name(url), namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
                         scheduling_strategy=here).remote(url)
    ray.get(handle.url.remote(), timeout=120)
    return handle


class GatewayStore:
    """An :class:`~workers.artifacts.store.ArtifactStore` reached through the gateway actor."""

    def __init__(self, url: str, timeout_s: float = 600.0) -> None:
        self.name = gateway_name(url)
        try:
            self.handle = ray.get_actor(self.name, namespace=NAMESPACE)
        except ValueError as exc:
            raise ArtifactError(f"the artifact gateway {self.name} is not running: the service that owns the store "
                                "starts it (is the API's node up?)") from exc
        self.timeout_s = timeout_s

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return ray.get(getattr(self.handle, method).remote(*args), timeout=self.timeout_s)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ArtifactError):
                raise ArtifactError(str(cause)) from exc
            raise

    def describe(self) -> str:
        return f"the artifact gateway ({self.name})"

    def read(self, key: str) -> bytes:
        return bytes(self._call("read", key))

    def write(self, key: str, data: bytes) -> None:
        self._call("write", key, data)

    def exists(self, key: str) -> bool:
        return bool(self._call("exists", key))

    def list(self, prefix: str) -> list[str]:
        return list(self._call("list", prefix))

    def size(self, key: str) -> int | None:
        got = self._call("size", key)
        return None if got is None else int(got)
