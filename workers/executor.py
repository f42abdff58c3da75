"""Attack trials as Ray tasks: :class:`RayTrialExecutor` implements ``mlac.audit``'s TrialExecutor.

Each trial spec (a plain dict) runs as one Ray task asking for the configured CPUs/GPUs (fractional
GPUs let several small trials share one). A worker process that dies mid-trial is retried by Ray
(``max_retries``). With a :class:`~workers.artifacts.localize.Localizer` (every job of the service), a spec's
checkpoint and dataset leave as artifact references (``mlac-artifact://...``: a folder the driver made, such as a
baseline or the defended model, is published first) and the trial fetches them into its node's cache, so a trial
reads no path of another machine. Each successful result is also written once to the job's
:class:`~workers.trial_store.TrialResultStore` (keyed by study and trial, in the artifact store): a trial whose
result is stored is not run again (a driver restarted on another node, a re-submitted batch), and the study
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
from mlac.audit.trial_group import DEFAULT_MAX_GROUP, run_trial_group, spec_groups
from mlac.contracts import TrialResult, study_label
from mlac.errors import StoppedError
from workers.artifacts.access import StoreAccess
from workers.artifacts.localize import Localizer
from workers.metrics import audit_metrics
from workers.resources import adopt_assigned_cpus, assigned_device, trial_gpus, trial_options
from workers.settings import RaySettings
from workers.trial_store import TrialResultStore

_CONTEXT: WorkerContext | None = None
_LOCALIZERS: dict[StoreAccess, Localizer] = {}
#: The spec fields that name files (references on the way to a trial).
PATH_FIELDS = ("checkpoint", "dataset")


def _worker_context() -> WorkerContext:
    """One cache (datasets, models, probe features) per Ray worker process, reused across trials."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = WorkerContext()
    return _CONTEXT


def local_spec(spec: dict[str, Any], access: dict[str, Any] | None) -> dict[str, Any]:
    """``spec`` with its artifact references as paths on this node (fetched into its cache once); unchanged
    without ``access`` (the CLI's single-machine Ray)."""
    if access is None:
        return spec
    key = StoreAccess.from_dict(access)
    if key not in _LOCALIZERS:
        _LOCALIZERS[key] = Localizer.open(key)
    loc = _LOCALIZERS[key]
    return {**spec, **{f: loc.local(str(spec[f])) for f in PATH_FIELDS if f in spec}}


def execute_trial(spec: dict[str, Any], num_cpus: float, access: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one trial on the device Ray assigned; tag where it ran.

    Returns the plain :class:`~mlac.contracts.TrialResult` (a Ray task's return value crosses processes)."""
    adopt_assigned_cpus(num_cpus)
    device = assigned_device()
    result = run_trial({**local_spec(spec, access), "device": str(device)}, _worker_context())
    return result.placed(ray.get_runtime_context().get_node_id(), os.getpid()).to_dict()


def trial_task_name(job_id: str | None, spec: dict[str, Any]) -> str:
    """The Ray task name of a trial (what the dashboard lists): job, study and attack kind, so that the trials of
    concurrent audits can be told apart, e.g. ``mlac-trial job_ab12 censored/harmful/n20/s0 full``."""
    tag = spec.get("tag") or {}
    params = spec.get("params") or {}
    study = study_label(tag.get("model", "?"), tag.get("task", spec.get("task")), tag.get("n", spec.get("n")),
                        tag.get("seed", "?"), sep="/")
    return " ".join(part for part in ("mlac-trial", job_id or "", study, str(params.get("kind", ""))) if part)


@ray.remote
def run_trial_task(spec: dict[str, Any], num_cpus: float, access: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ray task body (see :func:`execute_trial`)."""
    return execute_trial(spec, num_cpus, access)


def execute_trial_group(specs: list[dict[str, Any]], num_cpus: float, access: dict[str, Any] | None,
                        max_group: int) -> list[dict[str, Any]]:
    """Run a group of trials together (:func:`~mlac.audit.trial_group.run_trial_group`) on the device Ray
    assigned."""
    adopt_assigned_cpus(num_cpus)
    device = str(assigned_device())
    ran = run_trial_group([{**local_spec(s, access), "device": device} for s in specs], _worker_context(),
                          max_group=max_group)
    node, pid = ray.get_runtime_context().get_node_id(), os.getpid()
    return [r.placed(node, pid).to_dict() for r in ran]


@ray.remote
def run_trial_group_task(specs: list[dict[str, Any]], num_cpus: float, access: dict[str, Any] | None,
                         max_group: int) -> list[dict[str, Any]]:
    """Ray task body (see :func:`execute_trial_group`)."""
    return execute_trial_group(specs, num_cpus, access, max_group)


def group_task_name(job_id: str | None, specs: Sequence[dict[str, Any]]) -> str:
    """The Ray task name of a group: the first trial's name and how many train with it, e.g.
    ``mlac-trial job_ab12 censored/harmful/n20/s0 full +7``."""
    name = trial_task_name(job_id, specs[0])
    return f"{name} +{len(specs) - 1}" if len(specs) > 1 else name


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
        results: TrialResultStore | None = None,
        localizer: Localizer | None = None,
        access: StoreAccess | None = None,
        concurrency: int = 2,
        max_group: int = DEFAULT_MAX_GROUP,
    ) -> None:
        self.job_id = job_id
        self.results = results
        self.localizer = localizer
        self.access = access.to_dict() if access is not None else None
        self.num_cpus = num_cpus
        self.options = trial_options(num_cpus, num_gpus, resources, max_retries)
        self.should_stop = should_stop
        self.poll_s = poll_s
        self.executed = 0
        #: Ray tasks in flight at once; each runs one trial, or a group of up to ``max_group`` trained together.
        self.tasks = max(1, int(concurrency))
        self.max_group = max(1, int(max_group))
        #: How many trials run at once (the audit runner keeps enough searches in flight to fill it).
        self.concurrency = self.tasks * self.max_group
        self.nodes: set[str] = set()
        self.running: list[ray.ObjectRef] = []

    @classmethod
    def from_settings(cls, settings: RaySettings, *, job_id: str = "local", should_stop: Callable[[], bool] | None = None,
                      results: TrialResultStore | None = None, localizer: Localizer | None = None,
                      access: StoreAccess | None = None) -> RayTrialExecutor:
        """An executor whose trials ask for what ``settings`` say (GPUs resolved against the cluster)."""
        return cls(job_id=job_id, num_cpus=settings.trial_cpus, num_gpus=trial_gpus(settings),
                   resources=settings.trial_resources, max_retries=settings.trial_max_retries, should_stop=should_stop,
                   results=results, localizer=localizer, access=access, concurrency=settings.max_concurrency,
                   max_group=settings.max_group)

    def portable(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``specs`` as they leave for another node: their files as artifact references (unchanged without a
        localizer); each distinct path is converted once (a batch names the same checkpoint many times)."""
        if self.localizer is None:
            return [dict(s) for s in specs]
        refs: dict[str, str] = {}
        for spec in specs:
            for f in PATH_FIELDS:
                if f in spec and str(spec[f]) not in refs:
                    refs[str(spec[f])] = self.localizer.portable(str(spec[f]))
        return [{**s, **{f: refs[str(s[f])] for f in PATH_FIELDS if f in s}} for s in specs]

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run every spec as Ray tasks, at most :attr:`tasks` at once; results in spec order.

        Specs that can train together go to one task as a group (:func:`~mlac.audit.trial_group.spec_groups`,
        at most ``max_group``); a group of one is a plain trial task. Polls the stop flag every ``poll_s``:
        on stop the running tasks are force-cancelled and StoppedError is raised. A task whose retries ran
        out raises its Ray error (the job fails).
        """
        m = audit_metrics()
        tags = {"job": self.job_id}
        results: list[dict[str, Any] | None] = [None] * len(specs)
        sent = self.portable(specs)
        todo = []
        for i, spec in enumerate(sent):
            stored = self.results.get(spec) if self.results is not None else None
            if stored is not None:
                results[i] = replace(stored, reused=True).to_dict()
                self.executed += 1
            else:
                todo.append(i)
        queue = [[todo[j] for j in group] for group in spec_groups([specs[i] for i in todo], self.max_group)]
        in_flight: dict[ray.ObjectRef, list[int]] = {}
        try:
            while queue or in_flight:
                if self.should_stop is not None and self.should_stop():
                    self.cancel()
                    raise StoppedError("audit stopped: running trials were cancelled")
                while queue and len(in_flight) < self.tasks:
                    group = queue.pop(0)
                    in_flight[self._submit([dict(sent[i]) for i in group])] = group
                    self.running = list(in_flight)
                    m["started"].inc(len(group), tags=tags)
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    got = ray.get(ref)
                    group = in_flight.pop(ref)
                    self.running = list(in_flight)
                    for i, result in zip(group, got if isinstance(got, list) else [got], strict=True):
                        results[i] = result = self._record(sent[i], result)
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

    def _record(self, spec: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """Store a successful result once; the stored one wins (marked ``reused``) when it was there first."""
        if self.results is None or not result.get("ok"):
            return result
        stored, mine = self.results.put_once(spec, TrialResult.from_dict(result))
        return result if mine else replace(stored, reused=True).to_dict()

    def _submit(self, group: list[dict[str, Any]]) -> ray.ObjectRef:
        """One Ray task for ``group``: a plain trial task for one spec, a group task otherwise."""
        if len(group) == 1:
            return run_trial_task.options(name=trial_task_name(self.job_id, group[0]), **self.options).remote(
                group[0], self.num_cpus, self.access)
        return run_trial_group_task.options(name=group_task_name(self.job_id, group), **self.options).remote(
            group, self.num_cpus, self.access, self.max_group)

    def cancel(self) -> None:
        """Force-cancel every running trial task (their worker processes are killed)."""
        for ref in list(self.running):
            with contextlib.suppress(ray.exceptions.RayError, ValueError):
                ray.cancel(ref, force=True, recursive=True)
