"""Paths <-> references: what lets a spec cross to another node.

:meth:`Localizer.portable` turns a local path into a reference (a path in the node cache maps back to its tree; any
other directory is published first, once), :meth:`Localizer.local` turns a reference into a path on this node (its
tree fetched into the node cache once). Values that are neither (``tiny``, the built-in base) pass through.
:func:`map_job_paths` applies one of them to every path a :class:`~mlac.jobs.JobSpec` names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlac.jobs import JobSpec
from workers.artifacts.access import StoreAccess, open_store
from workers.artifacts.access import scope as store_scope
from workers.artifacts.cache import NodeCache
from workers.artifacts.refs import ArtifactRef, is_ref
from workers.artifacts.store import ArtifactStore
from workers.artifacts.trees import TreePublisher, companions, local_link_ok


class Localizer:
    """One store, this node's cache and a publisher that remembers what it published (thread-safe)."""

    def __init__(self, store: ArtifactStore, cache: NodeCache | None = None, *, link: bool | None = None,
                 scope: str = "local") -> None:
        self.store, self.scope = store, scope
        self.cache = cache if cache is not None else NodeCache()
        self.publisher = TreePublisher(store, link=local_link_ok(store) if link is None else link)

    @classmethod
    def open(cls, access: StoreAccess) -> Localizer:
        """The store of ``access`` with this node's default cache."""
        return cls(open_store(access), scope=store_scope(access))

    def work_dir(self, *parts: str) -> Path:
        """A working folder of this node for this store (a running job's folder: ``work_dir("jobs", id)``)."""
        return self.cache.root.joinpath("work", self.scope, *parts)

    def local(self, value: str) -> str:
        """A reference as a path on this node; anything else unchanged."""
        if not is_ref(value):
            return value
        return str(self.cache.path_of(self.store, ArtifactRef.parse(value)))

    def portable(self, value: str) -> str:
        """A local path as a reference (publishing a folder, or a file with its :func:`companions`, unless it lies
        in a cached tree); references and values that name no existing path unchanged."""
        if is_ref(value):
            return value
        path = Path(value)
        if not path.exists():
            return value
        cached = self.cache.ref_of(path)
        if cached is not None:
            return str(cached)
        if path.is_dir():
            folder, names = path.resolve(), None
        else:
            folder, names = path.resolve().parent, companions(path.resolve())
        tree_id = self.publisher.publish(folder, names)
        return str(ArtifactRef(tree_id, folder.name, None if path.is_dir() else path.name))


def map_job_paths(spec: JobSpec, convert: Callable[[str], str]) -> JobSpec:
    """``spec`` with ``convert`` applied to its dataset, base and the audit request's dataset, models and base."""
    request = spec.request
    if request is not None:
        request = request.replace(dataset=convert(request.dataset), models=tuple(convert(m) for m in request.models),
                                  base=convert(request.base) if request.base is not None else None)
    return spec.replace(dataset=convert(spec.dataset) if spec.dataset is not None else None,
                        base=convert(spec.base) if spec.base is not None else None, request=request)
