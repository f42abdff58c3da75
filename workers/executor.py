"""Attack trials as Ray tasks: :class:`RayTrialExecutor` implements ``mlac.audit``'s TrialExecutor.

Each trial spec (a plain dict) runs as one Ray task asking for the configured CPUs/GPUs (fractional
GPUs let several small trials share one). A worker process that dies mid-trial is retried by Ray
(``max_retries``); because each result is returned exactly once per spec to the study driver, which
tells Optuna once per trial number, a retried trial is never counted twice. A stop request cancels
the running tasks (force) within a poll interval and frees their resources.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import ray

from mlac.audit.trial import WorkerContext, run_trial
from mlac.errors import StoppedError
from workers.metrics import audit_metrics
from workers.resources import adopt_assigned_cpus, assigned_device, trial_options

_CONTEXT: WorkerContext | None = None


def _worker_context() -> WorkerContext:
    """One cache (datasets, models, probe features) per Ray worker process, reused across trials."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = WorkerContext()
    return _CONTEXT


@ray.remote
def run_trial_task(spec: dict[str, Any], num_cpus: float) -> dict[str, Any]:
    """Ray task body: run one trial on the device Ray assigned; tag the result with where it ran."""
    adopt_assigned_cpus(num_cpus)
    device = assigned_device()
    result = run_trial({**spec, "device": str(device)}, _worker_context())
    result["node_id"] = ray.get_runtime_context().get_node_id()
    result["worker_pid"] = os.getpid()
    return result


class RayTrialExecutor:
    """Runs each batch of trial specs as parallel Ray tasks; honours a stop flag."""

    def __init__(
        self,
        *,
        job_id: str = "local",
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        resources: dict[str, float] | None = None,
        max_retries: int = 3,
        should_stop: Callable[[], bool] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.job_id = job_id
        self.num_cpus = num_cpus
        self.options = trial_options(num_cpus, num_gpus, resources, max_retries)
        self.should_stop = should_stop
        self.poll_s = poll_s
        self.executed = 0
        #: Trials a study should ask for at once (the CLI sets the search's parallelism from it).
        self.parallelism = 2
        self.nodes: set[str] = set()
        self.running: list[ray.ObjectRef] = []

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Submit every spec, wait for all (or cancel all on stop); results in spec order."""
        m = audit_metrics()
        tags = {"job": self.job_id}
        refs = [run_trial_task.options(name="mlac-trial", **self.options).remote(dict(s), self.num_cpus) for s in specs]
        self.running = list(refs)
        for _ in refs:
            m["started"].inc(tags=tags)
        pending = list(refs)
        try:
            while pending:
                if self.should_stop is not None and self.should_stop():
                    self.cancel()
                    raise StoppedError("audit stopped: running trials were cancelled")
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=self.poll_s)
            results = ray.get(refs)
        finally:
            self.running = []
        for r in results:
            self.executed += 1
            m["finished" if r.get("ok") else "failed"].inc(tags=tags)
            if r.get("node_id"):
                self.nodes.add(str(r["node_id"]))
        return results

    def cancel(self) -> None:
        """Force-cancel every running trial task (their worker processes are killed)."""
        for ref in self.running:
            ray.cancel(ref, force=True, recursive=True)
