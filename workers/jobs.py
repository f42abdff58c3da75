"""Jobs on Ray: one named driver actor per job (``mlac-job-<id>``, visible in the dashboard).

Kinds: ``censor`` (MLAC on a base checkpoint), ``audit`` (an :class:`~mlac.audit.protocol.AuditRequest`),
``censor_then_audit`` (censor, then audit the censored model against the baselines). The driver
coordinates only (``num_cpus=0``): censoring runs in a restartable :mod:`censor actor
<workers.censor_actor>`, trials run as Ray tasks through :class:`~workers.executor.RayTrialExecutor`.
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

from mlac.audit.protocol import AuditRequest
from mlac.audit.runner import run_audit
from mlac.errors import ConfigError, MlacError, StoppedError
from mlac.job_failure import JobFailure, failure_of, strip_paths
from workers.censor_actor import censor_actor_class
from workers.executor import RayTrialExecutor
from workers.metrics import audit_metrics
from workers.progress import CANCELLED, FAILED, SUCCEEDED, CallbackSink, EventLog, ProgressSink
from workers.resources import censor_options
from workers.settings import RaySettings

__all__ = ["KINDS", "CallbackSink", "JobDriver", "JobRunner", "ProgressSink", "actor_name"]

KINDS = ("censor", "audit", "censor_then_audit")
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
    """ConfigError unless ``spec`` has what ``kind`` needs (see :class:`JobDriver`)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown job kind {kind!r}; choose from {', '.join(KINDS)}")
    needed = {"censor": ("base", "dataset"), "audit": ("request",), "censor_then_audit": ("base", "dataset", "request")}[kind]
    missing = [k for k in needed if k not in spec]
    if missing:
        raise ConfigError(f"a {kind} job spec needs {', '.join(needed)}; missing {', '.join(missing)}")


class JobDriver:
    """Runs one job; plain logic, made remote (a named, detached, restartable actor) by :class:`JobRunner`.

    ``spec`` by kind (plain JSON data):

    - ``audit``: ``{"request": AuditRequest.to_dict()}``
    - ``censor``: ``{"base": checkpoint dir, "dataset": saved dataset, "censor_config": MLACConfig fields,
      "split_seed": int (default 0)}``
    - ``censor_then_audit``: both; the censored model is added to the request's models.
    - optional ``optuna_storage``: the Optuna storage URL of the audit's studies (the service passes its
      PostgreSQL ``DATABASE_URL``); default ``audit/optuna.db``.

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
        """Run the job to its end; returns {state, result_path, error, error_detail} (``error``: a one-line cause,
        ``error_detail``: the traceback; see :class:`~mlac.job_failure.JobFailure`). Never raises.

        Idempotent: a second call (a re-attached watcher) waits for the first and returns the same outcome.
        """
        with self._run_lock:
            if self._outcome is None:
                self._outcome = self._run_once()
            return dict(self._outcome)

    def _run_once(self) -> dict[str, Any]:
        try:
            result_path = self._run()
            return {"state": SUCCEEDED, "result_path": result_path, "error": None, "error_detail": None}
        except StoppedError as exc:
            return {"state": CANCELLED, "result_path": None, **JobFailure(str(exc) or "cancelled").to_dict()}
        except Exception as exc:  # MlacError: its type, code and message; anything else: its last line
            failure = job_failure(exc, roots=(self.settings.data_dir, self.out_dir.parent.parent))
            if self._stop.is_set() and not isinstance(exc, MlacError):  # what a stop interrupted, not a user error
                return {"state": CANCELLED, "result_path": None, **JobFailure("cancelled", failure.detail).to_dict()}
            return {"state": FAILED, "result_path": None, **failure.to_dict()}

    def _run(self) -> str:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        censored: str | None = None
        if self.kind in ("censor", "censor_then_audit"):
            censored = self._run_censor()
            if self.kind == "censor":
                return censored
        request = AuditRequest.from_dict(dict(self.spec["request"]))
        if censored is not None:
            request = request.replace(models=(*request.models, censored))
        self.executor = RayTrialExecutor.from_settings(self.settings, job_id=self.job_id, should_stop=self._stop.is_set,
                                                       results_dir=str(self.out_dir / "trials"))
        audit_dir = self.out_dir / "audit"
        run_audit(request, audit_dir, progress=self._emit, should_stop=self._stop.is_set, executor=self.executor,
                  storage_url=self.spec.get("optuna_storage"),  # None: audit/optuna.db
                  study_namespace=self.job_id)  # identical jobs sharing the storage keep their own studies
        return str(audit_dir)

    def _run_censor(self) -> str:
        self._emit({"stage": "censor"})
        out = self.out_dir / "censored"
        actor_cls = censor_actor_class(self.settings.actor_max_restarts)
        self._censor = actor_cls.options(**censor_options(self.settings)).remote(
            self.spec["base"], self.spec["dataset"], str(out), dict(self.spec.get("censor_config", {})),
            split_seed=int(self.spec.get("split_seed", 0)), num_cpus=self.settings.censor_cpus,
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
                    self._emit({**record, "stage": "censor"})
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
            outcome: dict[str, Any] | None = None
            while outcome is None:
                done, _ = ray.wait([ref], timeout=self.poll_s)
                with contextlib.suppress(ray.exceptions.RayError):  # the driver may be restarting
                    self._forward(job_id, driver, sink, cursor)
                if done:
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        died = job_failure(exc)
                        outcome = {"state": FAILED, "result_path": None,
                                   **JobFailure(f"the job driver died: {died.cause}", died.detail).to_dict()}
        except Exception as exc:
            outcome = {"state": FAILED, "result_path": None, **job_failure(exc).to_dict()}
        except SystemExit:  # Ray is shutting down in this process: the detached driver goes on
            return
        self._reported.add(job_id)
        try:
            sink.finished(job_id, outcome["state"], outcome.get("result_path"), JobFailure.from_outcome(outcome))
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
