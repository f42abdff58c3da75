"""Jobs on Ray: one named driver actor per job (``mlac-job-<id>``, visible in the dashboard).

Kinds (:data:`mlac.jobs.JOB_KINDS`): ``defend`` (a registered defense on a base checkpoint), ``audit`` (an
:class:`~mlac.audit.protocol.AuditRequest`), ``defend_then_audit`` (defend, then audit the defended model against
the baselines); ``censor`` / ``censor_then_audit`` are the same with the MLAC defense. The driver is a shell over
:func:`mlac.jobs.run_job` and coordinates only (``num_cpus=0``): the defense runs in a restartable :mod:`censor
actor <workers.censor_actor>`, trials run as Ray tasks through :class:`~workers.executor.RayTrialExecutor`.
Progress is kept in the actor and polled by :class:`JobRunner`, which forwards it to a sink (the
service's job store, or the CLI's progress bar). A crashed driver is restarted by Ray and resumes:
the censor state and the Optuna journal live in the job's output folder.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from mlac.contracts import JobOutcome
from mlac.defenses import DefenseCall
from mlac.job_failure import JobFailure, failure_of, strip_paths
from mlac.jobs import JOB_KINDS, JobSpec, canonical_kind, check_plain, failed_outcome, run_job
from workers.censor_actor import censor_actor_class
from workers.executor import RayTrialExecutor
from workers.metrics import audit_metrics
from workers.progress import CallbackSink, EventLog, ProgressSink
from workers.resources import censor_options
from workers.settings import RaySettings

__all__ = ["KINDS", "CallbackSink", "JobDriver", "JobRunner", "ProgressSink", "actor_name"]

KINDS = JOB_KINDS
NAMESPACE = "mlac-audit"
#: Ray colours the remote traceback for terminals.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
log = logging.getLogger(__name__)


def actor_name(job_id: str) -> str:
    """The Ray actor name of a job's driver."""
    return f"mlac-job-{job_id}"


def job_failure(exc: BaseException, roots: tuple[str | Path, ...] = ()) -> JobFailure:
    """:func:`~mlac.job_failure.failure_of`, except that an exception raised in an actor or task (Ray's
    ``RayTaskError``) is reported by the exception it wraps, with the remote traceback as the detail."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, BaseException):
        remote = getattr(exc, "traceback_str", None) or str(exc)
        return JobFailure(failure_of(cause, roots).cause, strip_paths(ANSI_ESCAPE.sub("", str(remote)), roots))
    return failure_of(exc, roots)


def check_spec(kind: str, spec: dict[str, Any]) -> None:
    """ConfigError unless ``kind`` is known and ``spec`` has what it needs (see :class:`JobDriver`); the spec is
    validated when the job runs (:meth:`mlac.jobs.JobSpec.from_dict`), so a bad one ends the job FAILED."""
    canonical_kind(kind)
    check_plain(kind, spec)


class JobDriver:
    """Runs one job through :func:`mlac.jobs.run_job`; plain logic, made remote (a named, detached, restartable
    actor) by :class:`JobRunner`.

    ``spec``: :meth:`mlac.jobs.JobSpec.to_dict` (plain JSON data): ``dataset``, ``base`` (the checkpoint a defense
    starts from), ``split_seed``, ``defense`` (``{"name", "config"}``; older specs: ``censor_config``, MLAC
    fields), ``request`` (``AuditRequest.to_dict()``), optional ``optuna_storage`` (the Optuna storage URL of the
    audit's studies; the service passes its PostgreSQL ``DATABASE_URL``; default ``audit/optuna.db``).

    Output folder: ``censored/`` (checkpoint and resume state), ``audit/`` (report, Optuna journal),
    ``trials/`` (one JSON per trial, written once).
    """

    def __init__(self, job_id: str, kind: str, spec: dict[str, Any], out_dir: str, settings: dict[str, Any]) -> None:
        check_spec(kind, spec)
        self.job_id, self.kind, self.spec, self.out_dir = job_id, kind, spec, Path(out_dir)
        self.settings = RaySettings(**{**settings, "data_dir": Path(settings.get("data_dir", "data"))})
        self._stop = threading.Event()
        self._run_lock = threading.Lock()
        self._outcome: dict[str, Any] | None = None
        self.log = EventLog()
        self.instance = uuid.uuid4().hex
        self._censor: Any = None
        self.executor: RayTrialExecutor | None = None

    def stop(self) -> None:
        """Request cancellation: the censor actor and the running trials are stopped."""
        self._stop.set()
        if self._censor is not None:
            self._censor.stop.remote()
        if self.executor is not None:
            self.executor.cancel()

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Progress events from index ``since`` on."""
        return self.log.since(since)

    def poll(self, since: int = 0) -> dict[str, Any]:
        """``{"instance": id of this actor incarnation, "events": events from index since}``; a new
        instance id tells the watcher that Ray restarted the driver and its event log began again."""
        return {"instance": self.instance, "events": self.log.since(since)}

    def nodes(self) -> list[str]:
        """Ray node ids on which trials ran."""
        return sorted(self.executor.nodes) if self.executor is not None else []

    def _emit(self, event: dict[str, Any]) -> None:
        clean = self.log.append(event)
        if clean.get("best_harmful_so_far") is not None:
            audit_metrics()["best_harmful"].set(float(clean["best_harmful_so_far"]), tags={"job": self.job_id})

    def run(self) -> dict[str, Any]:
        """Run the job to its end; returns :meth:`JobOutcome.to_dict` (``error``: a one-line cause, ``error_detail``:
        the traceback; see :class:`~mlac.job_failure.JobFailure`). Never raises.

        Idempotent: a second call (a re-attached watcher) waits for the first and returns the same outcome.
        """
        with self._run_lock:
            if self._outcome is None:
                self._outcome = self._run_once().to_dict()
            return dict(self._outcome)

    def _describe(self, exc: BaseException) -> JobFailure:
        return job_failure(exc, roots=(self.settings.data_dir, self.out_dir.parent.parent))

    def _run_once(self) -> JobOutcome:
        try:
            spec = JobSpec.from_dict(self.spec, kind=self.kind)
        except Exception as exc:  # a spec that does not parse ends the job FAILED, like any error
            return failed_outcome(exc, stopped=self._stop.is_set(), describe=self._describe)
        if spec.request is not None:
            self.executor = RayTrialExecutor.from_settings(self.settings, job_id=self.job_id,
                                                           should_stop=self._stop.is_set,
                                                           results_dir=str(self.out_dir / "trials"))
        return run_job(spec, self.out_dir, progress=self._emit, should_stop=self._stop.is_set, executor=self.executor,
                       defend=self._defend_in_actor,
                       study_namespace=self.job_id,  # identical jobs sharing the storage keep their own studies
                       describe_failure=self._describe)

    def _defend_in_actor(self, call: DefenseCall) -> str:
        """Run the defense in a restartable censor actor (it resumes after a crash); forward its progress."""
        actor_cls = censor_actor_class(self.settings.actor_max_restarts)
        self._censor = actor_cls.options(**censor_options(self.settings)).remote(
            call.base, call.dataset, call.out_dir, call.defense.to_dict()["config"], split_seed=call.split_seed,
            num_cpus=self.settings.censor_cpus, defense=call.defense.name,
        )
        if self._stop.is_set():
            self._censor.stop.remote()
        ref = self._censor.run.remote()
        last_step = None
        while True:
            done, _ = ray.wait([ref], timeout=1.0)
            with contextlib.suppress(ray.exceptions.RayError):  # the censor actor may be restarting
                record = ray.get(self._censor.progress.remote(), timeout=10)
                if record.get("step") != last_step:
                    last_step = record.get("step")
                    self._emit({**record, "stage": "censor", "defense": call.defense.name})
            if done:
                break
        try:
            summary = ray.get(ref)
        finally:
            ray.kill(self._censor, no_restart=True)
            self._censor = None
        return str(summary["out_dir"])


class JobRunner:
    """The service's entry to the Ray layer: submits jobs as named detached driver actors and forwards
    their progress to a sink from one watcher thread per job.

    Thread-safe. ``submit`` of a job whose driver still exists (the service restarted) re-attaches to it
    instead of starting the job again; the sink then receives the job's events from the start.
    """

    def __init__(self, settings: RaySettings, artifact_root: Path, poll_s: float = 1.0) -> None:
        self.settings = settings
        self.artifact_root = Path(artifact_root)
        self.poll_s = poll_s
        self._threads: dict[str, threading.Thread] = {}
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def _settings_dict(self) -> dict[str, Any]:
        values = asdict(self.settings)
        values["data_dir"] = str(values["data_dir"])
        return values

    def job_dir(self, job_id: str) -> Path:
        """Where a job's artifacts go."""
        return self.artifact_root / "jobs" / job_id

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        """Start (or re-attach to) the job's driver actor and watch it in a background thread.

        Raises ConfigError for an unknown kind or a spec that lacks what the kind needs.
        """
        check_spec(kind, spec)
        with self._lock:
            if self.is_running(job_id):
                return
            self._reported.discard(job_id)
            restarts = self.settings.actor_max_restarts
            driver_cls = ray.remote(  # type: ignore[call-overload]  # stubs lack max_concurrency
                max_restarts=restarts, max_task_retries=restarts, max_concurrency=4)(JobDriver)
            # Node affinity to this (the API's) node: a zero-CPU actor is otherwise placed on any node, and a
            # driver on a worker node that dies takes the job with it (found by the multi-node kill test).
            # Hard, because Ray did not honour a soft affinity there; a restarted service resumes the job.
            here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
            driver = driver_cls.options(name=actor_name(job_id), namespace=NAMESPACE, lifetime="detached",
                                        get_if_exists=True, num_cpus=0, scheduling_strategy=here).remote(
                job_id, kind, spec, str(self.job_dir(job_id)), self._settings_dict()
            )
            thread = threading.Thread(target=self._watch, args=(job_id, driver, sink), name=f"watch-{job_id}", daemon=True)
            self._threads[job_id] = thread
            thread.start()

    def _forward(self, job_id: str, driver: Any, sink: ProgressSink, cursor: dict[str, Any]) -> None:
        """Send the driver's new events to the sink (from the start again if the driver was restarted)."""
        polled = ray.get(driver.poll.remote(0), timeout=30)
        if polled["instance"] != cursor.get("instance"):
            cursor.update(instance=polled["instance"], seen=0)
        for event in polled["events"][cursor["seen"]:]:
            cursor["seen"] += 1
            try:
                sink.event(job_id, event)
            except Exception:  # a sink hiccup must not stop the job's watch
                log.exception("progress sink failed for job %s", job_id)

    def _watch(self, job_id: str, driver: Any, sink: ProgressSink) -> None:
        try:
            ref = driver.run.remote()
            cursor: dict[str, Any] = {}
            outcome: JobOutcome | None = None
            while outcome is None:
                done, _ = ray.wait([ref], timeout=self.poll_s)
                with contextlib.suppress(ray.exceptions.RayError):  # the driver may be restarting
                    self._forward(job_id, driver, sink, cursor)
                if done:
                    try:
                        outcome = JobOutcome.from_dict(ray.get(ref))
                    except ray.exceptions.RayError as exc:
                        died = job_failure(exc)
                        outcome = JobOutcome("FAILED", failure=JobFailure(f"the job driver died: {died.cause}", died.detail))
        except Exception as exc:
            outcome = JobOutcome("FAILED", failure=job_failure(exc))
        except SystemExit:  # Ray is shutting down in this process: the detached driver goes on
            return
        self._reported.add(job_id)
        try:
            sink.finished(job_id, outcome)
        finally:
            with contextlib.suppress(Exception):
                ray.kill(driver, no_restart=True)

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop: running trials are force-cancelled within seconds and the job ends
        CANCELLED (reported through its sink). No-op for an unknown or finished job."""
        try:
            driver = ray.get_actor(actor_name(job_id), namespace=NAMESPACE)
        except ValueError:
            return
        with contextlib.suppress(ray.exceptions.RayActorError):
            ray.get(driver.stop.remote(), timeout=30)

    def is_running(self, job_id: str) -> bool:
        """Whether this runner is still watching the job (it has not reported ``finished`` yet)."""
        thread = self._threads.get(job_id)
        return thread is not None and thread.is_alive() and job_id not in self._reported

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until the job's watcher has reported ``finished`` to the sink."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
