"""MLAC censoring as a Ray actor that survives crashes.

:class:`CensorRun` is plain logic (loads the base checkpoint and the dataset by path, runs
``mlac.censor.train_mlac`` with its resume state under the output directory, keeps the latest progress,
honours a stop flag). :func:`censor_actor_class` makes it remote with ``max_restarts`` and
``max_task_retries``: when its process dies, Ray starts a new one and re-runs ``run``, which resumes
from the last saved state instead of step 0. The actor is threaded (``max_concurrency=2``) so that
``progress`` and ``stop`` are answered while ``run`` works.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import ray

from mlac.censor.config import MLACConfig
from mlac.censor.train import train_mlac
from mlac.data import load_saved_dataset, make_splits
from mlac.models import load_checkpoint
from workers.resources import adopt_assigned_cpus, assigned_device


class CensorRun:
    """Censor one base checkpoint on one dataset; resumable, observable, stoppable."""

    def __init__(self, base_checkpoint: str, dataset_path: str, out_dir: str, config: dict[str, Any], *,
                 split_seed: int = 0, num_cpus: float = 1.0) -> None:
        self.base_checkpoint = base_checkpoint
        self.dataset_path = dataset_path
        self.out_dir = out_dir
        self.config = dict(config)
        self.split_seed = split_seed
        self.num_cpus = num_cpus
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
        """Ask ``run`` to save its state and stop before the next outer step."""
        self._stop.set()

    def _record(self, event: dict[str, Any]) -> None:
        """Keep the latest step record merged with the latest validation record (plain values only)."""
        with self._lock:
            self._latest.update({k: v for k, v in event.items() if isinstance(v, (int, float, str, bool, type(None)))})
            self._latest["attempt_pid"] = os.getpid()

    def run(self) -> dict[str, Any]:
        """Train (resuming if a state exists); return a plain summary of the result."""
        adopt_assigned_cpus(self.num_cpus)
        device = assigned_device()
        config = MLACConfig.from_dict({**self.config, "device": str(device)})
        ds, task = load_saved_dataset(self.dataset_path)
        splits = make_splits(ds, seed=self.split_seed)
        loaded = load_checkpoint(self.base_checkpoint, num_beneficial=len(task.beneficial_names) or None, device=device)
        result = train_mlac(
            loaded.model, loaded.tokenizer, splits.train, task, config,
            out_dir=self.out_dir, progress=self._record, should_stop=self._stop.is_set, resume=True,
            parent_sha256=loaded.sha256, dataset_fingerprint=splits.fingerprints["train"],
            beneficial_names=task.beneficial_names,
        )
        return {
            "out_dir": str(Path(self.out_dir)),
            "weights_sha256": result.weights_sha256,
            "steps_done": result.steps_done,
            "best_step": result.best_step,
            "best_objective": result.best_objective,
            "resumed_from": result.resumed_from,
        }


def censor_actor_class(max_restarts: int = 3) -> Any:
    """The remote version of :class:`CensorRun` (resources are set per instance with ``.options``)."""
    return ray.remote(max_restarts=max_restarts, max_task_retries=max_restarts, max_concurrency=2)(CensorRun)  # type: ignore[call-overload]  # stubs lack max_concurrency
