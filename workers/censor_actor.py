"""A defense (MLAC by default) as a Ray actor that survives crashes.

:class:`CensorRun` is plain logic (runs :func:`mlac.defenses.run_defense` on a base checkpoint and a dataset by
path, with its resume state under the output directory, keeps the latest progress, honours a stop flag).
:func:`censor_actor_class` makes it remote with ``max_restarts`` and ``max_task_retries``: when its process
dies, Ray starts a new one and re-runs ``run``, which resumes from the last saved state instead of step 0
(for defenses whose training keeps one: ``mlac``, ``ac``). The actor is threaded (``max_concurrency=2``) so
that ``progress`` and ``stop`` are answered while ``run`` works.

With a store (``access`` and ``out_prefix``: every job of the service) the actor needs no shared disk: the base
and the dataset arrive as artifact references and are fetched into this node's cache, the output folder is a
folder of this node that is pulled from ``out_prefix`` in the store before training (the resume state of an
attempt on another node) and pushed there while training and at the end.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import ray

from mlac.defenses import DefenseCall, DefenseSpec, run_defense
from workers.artifacts.access import StoreAccess
from workers.artifacts.localize import Localizer
from workers.artifacts.mirror import FolderMirror
from workers.resources import adopt_assigned_cpus, assigned_device

#: Seconds between pushes of the output folder (resume state) to the store while training.
PUSH_EVERY_S = 10.0


class CensorRun:
    """Defend one base checkpoint on one dataset; resumable, observable, stoppable.

    ``config``: the defense's config fields (for ``mlac``: :class:`~mlac.censor.config.MLACConfig` fields).
    """

    def __init__(self, base_checkpoint: str, dataset_path: str, out_dir: str, config: dict[str, Any], *,
                 split_seed: int = 0, num_cpus: float = 1.0, defense: str = "mlac",
                 access: dict[str, Any] | None = None, out_prefix: str | None = None) -> None:
        self.base_checkpoint = base_checkpoint
        self.dataset_path = dataset_path
        self.out_dir = out_dir
        self.config = dict(config)
        self.split_seed = split_seed
        self.num_cpus = num_cpus
        self.defense = defense
        self.access = StoreAccess.from_dict(access) if access is not None else None
        self.out_prefix = out_prefix
        self._stop = threading.Event()
        self._latest: dict[str, Any] = {"event": "created"}
        self._lock = threading.Lock()

    def pid(self) -> int:
        """Process id of the worker running this actor (tests kill it)."""
        return os.getpid()

    def progress(self) -> dict[str, Any]:
        """The latest progress record (step, losses, ETA)."""
        with self._lock:
            return dict(self._latest)

    def stop(self) -> None:
        """Ask ``run`` to save its state and stop before the next step."""
        self._stop.set()

    def _record(self, event: dict[str, Any]) -> None:
        """Keep the latest step record merged with the latest validation record (plain values only)."""
        with self._lock:
            self._latest.update({k: v for k, v in event.items() if isinstance(v, (int, float, str, bool, type(None)))})
            self._latest["attempt_pid"] = os.getpid()

    def run(self) -> dict[str, Any]:
        """Train on the device Ray assigned (resuming if a state exists); return a plain summary of the result
        (:meth:`~mlac.defenses.DefenseResult.to_dict` with ``out_dir``)."""
        adopt_assigned_cpus(self.num_cpus)
        device = str(assigned_device())
        spec = DefenseSpec.from_dict({"name": self.defense, "config": self.config})
        if self.access is None or self.out_prefix is None:
            call = DefenseCall(defense=spec, base=self.base_checkpoint, dataset=self.dataset_path,
                               split_seed=self.split_seed, out_dir=self.out_dir)
            result = run_defense(call, device=device, progress=self._record, should_stop=self._stop.is_set)
            return {"out_dir": result.checkpoint, **result.to_dict()}
        loc = Localizer.open(self.access)
        local = loc.work_dir("censor", self.out_prefix)
        mirror = FolderMirror(loc.store, self.out_prefix, local)
        mirror.pull()
        call = DefenseCall(defense=spec, base=loc.local(self.base_checkpoint), dataset=loc.local(self.dataset_path),
                           split_seed=self.split_seed, out_dir=str(local))
        with mirror.every(PUSH_EVERY_S):
            result = run_defense(call, device=device, progress=self._record, should_stop=self._stop.is_set)
        relative = Path(result.checkpoint).resolve().relative_to(local.resolve()).as_posix()
        shutil.rmtree(local, ignore_errors=True)  # pushed: the driver pulls it from the store
        return {**result.to_dict(), "out_dir": relative}


def censor_actor_class(max_restarts: int = 3) -> Any:
    """The remote version of :class:`CensorRun` (resources are set per instance with ``.options``)."""
    return ray.remote(max_restarts=max_restarts, max_task_retries=max_restarts, max_concurrency=2)(CensorRun)  # type: ignore[call-overload]  # stubs lack max_concurrency
