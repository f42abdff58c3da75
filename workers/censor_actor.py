"""A defense (MLAC by default) as a Ray actor that survives crashes.

:class:`CensorRun` is plain logic (runs :func:`mlac.defenses.run_defense` on a base checkpoint and a dataset by
path, with its resume state under the output directory, keeps the latest progress, honours a stop flag).
:func:`censor_actor_class` makes it remote with ``max_restarts`` and ``max_task_retries``: when its process
dies, Ray starts a new one and re-runs ``run``, which resumes from the last saved state instead of step 0
(for defenses whose training keeps one: ``mlac``, ``ac``). The actor is threaded (``max_concurrency=2``) so
that ``progress`` and ``stop`` are answered while ``run`` works.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import ray

from mlac.defenses import DefenseCall, DefenseSpec, run_defense
from workers.resources import adopt_assigned_cpus, assigned_device


class CensorRun:
    """Defend one base checkpoint on one dataset; resumable, observable, stoppable.

    ``config``: the defense's config fields (for ``mlac``: :class:`~mlac.censor.config.MLACConfig` fields).
    """

    def __init__(self, base_checkpoint: str, dataset_path: str, out_dir: str, config: dict[str, Any], *,
                 split_seed: int = 0, num_cpus: float = 1.0, defense: str = "mlac") -> None:
        self.base_checkpoint = base_checkpoint
        self.dataset_path = dataset_path
        self.out_dir = out_dir
        self.config = dict(config)
        self.split_seed = split_seed
        self.num_cpus = num_cpus
        self.defense = defense
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
        call = DefenseCall(defense=DefenseSpec.from_dict({"name": self.defense, "config": self.config}),
                           base=self.base_checkpoint, dataset=self.dataset_path, split_seed=self.split_seed,
                           out_dir=self.out_dir)
        result = run_defense(call, device=device, progress=self._record, should_stop=self._stop.is_set)
        return {"out_dir": result.checkpoint, **result.to_dict()}


def censor_actor_class(max_restarts: int = 3) -> Any:
    """The remote version of :class:`CensorRun` (resources are set per instance with ``.options``)."""
    return ray.remote(max_restarts=max_restarts, max_task_retries=max_restarts, max_concurrency=2)(CensorRun)  # type: ignore[call-overload]  # stubs lack max_concurrency
