"""Attack trials as Ray tasks: :class:`RayTrialExecutor` implements ``mlac.audit``'s TrialExecutor.

Each trial spec (a plain dict) runs as one Ray task asking for the configured CPUs/GPUs (fractional
GPUs let several small trials share one). A worker process that dies mid-trial is retried by Ray
(``max_retries``). Each successful result is also written once to the job's
:class:`~workers.trial_store.TrialResultStore` (keyed by study and trial): a retried attempt of a
trial that had already finished returns the stored result instead of a second one, and the study
driver tells Optuna exactly one result per trial number, so a retried trial is never counted twice.
A stop request cancels the running tasks (force) within a poll interval and frees their resources.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import ray

from mlac.audit.trial import WorkerContext, run_trial
from mlac.contracts import study_label
from mlac.errors import StoppedError
from workers.metrics import audit_metrics
from workers.resources import adopt_assigned_cpus, assigned_device, trial_gpus, trial_options
from workers.settings import RaySettings
from workers.trial_store import TrialResultStore

_CONTEXT: WorkerContext | None = None


def _worker_context() -> WorkerContext:
    """One cache (datasets, models, probe features) per Ray worker process, reused across trials."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = WorkerContext()
    return _CONTEXT


def execute_trial(spec: dict[str, Any], num_cpus: float, store_root: str | None) -> dict[str, Any]:
    """Run one trial on the device Ray assigned (or return its stored result); tag where it ran.

    Returns the plain :class:`~mlac.contracts.TrialResult` (a Ray task's return value crosses processes)."""
    store = TrialResultStore(store_root) if store_root else None
    if store is not None:
        stored = store.get(spec)
        if stored is not None:
            return replace(stored, reused=True).to_dict()
    adopt_assigned_cpus(num_cpus)
    device = assigned_device()
    result = run_trial({**spec, "device": str(device)}, _worker_context())
    result = result.placed(ray.get_runtime_context().get_node_id(), os.getpid())
    if store is not None and result.ok:
        result, mine = store.put_once(spec, result)
        if not mine:
            result = replace(result, reused=True)
    return result.to_dict()


def trial_task_name(job_id: str | None, spec: dict[str, Any]) -> str:
    """The Ray task name of a trial (what the dashboard lists): job, study and attack kind, so that the trials of
    concurrent audits can be told apart, e.g. ``mlac-trial job_ab12 censored/harmful/n20/s0 full``."""
    tag = spec.get("tag") or {}
    params = spec.get("params") or {}
    study = study_label(tag.get("model", "?"), tag.get("task", spec.get("task")), tag.get("n", spec.get("n")),
                        tag.get("seed", "?"), sep="/")
    return " ".join(part for part in ("mlac-trial", job_id or "", study, str(params.get("kind", ""))) if part)


@ray.remote
def run_trial_task(spec: dict[str, Any], num_cpus: float, store_root: str | None = None) -> dict[str, Any]:
    """Ray task body (see :func:`execute_trial`)."""
    return execute_trial(spec, num_cpus, store_root)


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
        results_dir: str | None = None,
        concurrency: int = 2,
    ) -> None:
        self.job_id = job_id
        self.results_dir = results_dir
        self.num_cpus = num_cpus
        self.options = trial_options(num_cpus, num_gpus, resources, max_retries)
        self.should_stop = should_stop
        self.poll_s = poll_s
        self.executed = 0
        #: How many trials run at once (the audit runner keeps enough searches in flight to fill it).
        self.concurrency = max(1, int(concurrency))
        self.nodes: set[str] = set()
        self.running: list[ray.ObjectRef] = []

    @classmethod
    def from_settings(cls, settings: RaySettings, *, job_id: str = "local", should_stop: Callable[[], bool] | None = None,
                      results_dir: str | None = None) -> RayTrialExecutor:
        """An executor whose trials ask for what ``settings`` say (GPUs resolved against the cluster)."""
        return cls(job_id=job_id, num_cpus=settings.trial_cpus, num_gpus=trial_gpus(settings),
                   resources=settings.trial_resources, max_retries=settings.trial_max_retries, should_stop=should_stop,
                   results_dir=results_dir, concurrency=settings.max_concurrency)

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec as a Ray task, at most :attr:`concurrency` at once; results in spec order.

        Polls the stop flag every ``poll_s``: on stop the running tasks are force-cancelled and
        StoppedError is raised. A task whose retries ran out raises its Ray error (the job fails).
        """
        m = audit_metrics()
        tags = {"job": self.job_id}
        results: list[dict[str, Any] | None] = [None] * len(specs)
        queue = list(range(len(specs)))
        in_flight: dict[ray.ObjectRef, int] = {}
        try:
            while queue or in_flight:
                if self.should_stop is not None and self.should_stop():
                    self.cancel()
                    raise StoppedError("audit stopped: running trials were cancelled")
                while queue and len(in_flight) < self.concurrency:
                    i = queue.pop(0)
                    ref = run_trial_task.options(name=trial_task_name(self.job_id, specs[i]), **self.options).remote(
                        dict(specs[i]), self.num_cpus, self.results_dir)
                    in_flight[ref] = i
                    self.running = list(in_flight)
                    m["started"].inc(tags=tags)
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    result = ray.get(ref)
                    results[in_flight.pop(ref)] = result
                    self.running = list(in_flight)
                    self.executed += 1
                    m["finished" if result.get("ok") else "failed"].inc(tags=tags)
                    if result.get("node_id"):
                        self.nodes.add(str(result["node_id"]))
        except ray.exceptions.RayError:  # retries ran out: cancel the rest, the audit fails with this traceback
            m["failed"].inc(tags=tags)
            self.cancel()
            raise
        finally:
            self.running = []
        return [r for r in results if r is not None]

    def cancel(self) -> None:
        """Force-cancel every running trial task (their worker processes are killed)."""
        for ref in list(self.running):
            with contextlib.suppress(ray.exceptions.RayError, ValueError):
                ray.cancel(ref, force=True, recursive=True)
