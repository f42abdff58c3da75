"""Jobs on Ray: one named driver actor per job (``mlac-job-<id>``, visible in the dashboard).

Kinds (:data:`mlac.jobs.JOB_KINDS`): ``defend`` (a registered defense on a base checkpoint), ``audit`` (an
:class:`~mlac.audit.protocol.AuditRequest`), ``defend_then_audit`` (defend, then audit the defended model against
the baselines); ``censor`` / ``censor_then_audit`` are the same with the MLAC defense. The driver is a shell over
:func:`mlac.jobs.run_job` and coordinates only (``num_cpus=0``): the defense runs in a restartable :mod:`censor
actor <workers.censor_actor>`, trials run as Ray tasks through :class:`~workers.executor.RayTrialExecutor`.
Progress is kept in the actor and polled by :class:`JobRunner`, which forwards it to a sink (the
service's job store, or the CLI's progress bar).

No process of a job needs the API's disk (:mod:`workers.artifacts`): :class:`JobRunner` publishes the job's
checkpoints and dataset to the artifact store and hands the driver references; the driver fetches them into its
node's cache, works in a folder of its node and keeps that folder in the store (``jobs/<id>/``, pushed every few
seconds and at the end); trials and the censor actor fetch what they need themselves. So a driver may run on any
node: when its node dies, Ray restarts it elsewhere (same job id), it pulls the job's folder back from the store and
resumes (censor state, Optuna studies, stored trial results), and the watcher follows the new incarnation. When the
job ends, the runner pulls its folder into the API's artifact folder (nothing to do for the ``file://`` default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray

from mlac.contracts import JobOutcome
from mlac.defenses import DefenseCall
from mlac.errors import MlacError
from mlac.job_failure import JobFailure, failure_of, strip_paths
from mlac.jobs import DEFENDED_DIR, JOB_KINDS, JobSpec, canonical_kind, check_plain, failed_outcome, run_job
from workers.artifacts.access import StoreAccess, artifact_url
from workers.artifacts.localize import Localizer, map_job_paths
from workers.artifacts.mirror import FolderMirror, job_prefix
from workers.artifacts.store import FsspecStore
from workers.censor_actor import censor_actor_class
from workers.executor import RayTrialExecutor
from workers.metrics import audit_metrics
from workers.progress import CallbackSink, EventLog, ProgressSink
from workers.resources import censor_options
from workers.settings import RaySettings
from workers.trial_store import TrialResultStore

__all__ = ["KINDS", "CallbackSink", "JobDriver", "JobRunner", "ProgressSink", "actor_name"]

KINDS = JOB_KINDS
NAMESPACE = "mlac-audit"
#: Ray colours the remote traceback for terminals.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
log = logging.getLogger(__name__)
#: Seconds between pushes of a running job's folder to the store (what a restarted driver resumes from).
PUSH_EVERY_S = 10.0
#: How long the watcher waits for Ray to bring back a driver whose node died (a node with room must join).
REATTACH_TIMEOUT_S = 900.0
#: Parts of a job's folder the driver does not push: trial results go to the store directly, the defended
#: model is pushed by the censor actor.
NOT_PUSHED = ("trials", DEFENDED_DIR)


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

    Output folder (``jobs/<id>/`` in the store; a folder of the driver's node while it runs): ``censored/``
    (checkpoint and resume state), ``audit/`` (report, Optuna journal), ``trials/`` (one JSON per trial, written
    once). ``access``: :meth:`~workers.artifacts.access.StoreAccess.to_dict` of the job's store.
    """

    def __init__(self, job_id: str, kind: str, spec: dict[str, Any], settings: dict[str, Any],
                 access: dict[str, Any]) -> None:
        check_spec(kind, spec)
        self.job_id, self.kind, self.spec = job_id, kind, spec
        self.access = StoreAccess.from_dict(access)
        self.localizer: Localizer | None = None
        self.out_dir = Path()
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
            self.localizer = loc = Localizer.open(self.access)
            self.out_dir = loc.work_dir(job_prefix(self.job_id))
            mirror = FolderMirror(loc.store, job_prefix(self.job_id), self.out_dir, exclude=NOT_PUSHED)
            shutil.rmtree(self.out_dir, ignore_errors=True)  # an earlier incarnation's leftovers on this node
            mirror.pull()  # a restarted driver resumes from what its earlier incarnation pushed (the store decides)
            spec = map_job_paths(spec, loc.local)
        except Exception as exc:  # a spec that does not parse, a store that cannot be read: the job ends FAILED
            return failed_outcome(exc, stopped=self._stop.is_set(), describe=self._describe)
        if spec.request is not None:
            results = TrialResultStore(loc.store, f"{job_prefix(self.job_id)}/trials")
            self.executor = RayTrialExecutor.from_settings(self.settings, job_id=self.job_id,
                                                           should_stop=self._stop.is_set, results=results,
                                                           localizer=loc, access=self.access)
        with mirror.every(PUSH_EVERY_S):
            outcome = run_job(spec, self.out_dir, progress=self._emit, should_stop=self._stop.is_set,
                              executor=self.executor, defend=self._defend_in_actor,
                              study_namespace=self.job_id,  # identical jobs sharing the storage keep their own studies
                              describe_failure=self._describe)
        if outcome.result_path is not None:  # the API finds it in its copy of the job's folder
            relative = Path(outcome.result_path).resolve().relative_to(self.out_dir.resolve()).as_posix()
            outcome = dataclasses.replace(outcome, result_path=relative)
        shutil.rmtree(self.out_dir, ignore_errors=True)  # pushed: the store holds it now
        return outcome

    def _defend_in_actor(self, call: DefenseCall) -> str:
        """Run the defense in a restartable censor actor (it resumes after a crash, on any node, from the store);
        forward its progress; pull the defended model into this node's job folder."""
        assert self.localizer is not None  # set by _run_once before run_job calls this
        loc = self.localizer
        prefix = f"{job_prefix(self.job_id)}/{DEFENDED_DIR}"
        actor_cls = censor_actor_class(self.settings.actor_max_restarts)
        self._censor = actor_cls.options(**censor_options(self.settings)).remote(
            loc.portable(call.base), loc.portable(call.dataset), prefix, call.defense.to_dict()["config"],
            split_seed=call.split_seed, num_cpus=self.settings.censor_cpus, defense=call.defense.name,
            access=self.access.to_dict(), out_prefix=prefix,
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
        local = Path(call.out_dir)
        FolderMirror(loc.store, prefix, local).pull()
        return str(local / summary["out_dir"])


class JobRunner:
    """The service's entry to the Ray layer: submits jobs as named detached driver actors and forwards
    their progress to a sink from one watcher thread per job.

    Thread-safe. ``submit`` of a job whose driver still exists (the service restarted) re-attaches to it
    instead of starting the job again; the sink then receives the job's events from the start. ``access``: the
    artifact store (default: ``MLAC_ARTIFACT_URL``, else ``file://<artifact_root>`` served by the gateway actor).
    """

    def __init__(self, settings: RaySettings, artifact_root: Path, poll_s: float = 1.0,
                 access: StoreAccess | None = None) -> None:
        self.settings = settings
        self.artifact_root = Path(artifact_root)
        self.poll_s = poll_s
        self.access = access if access is not None else StoreAccess.for_url(artifact_url(self.artifact_root))
        self._store: FsspecStore | None = None
        self._publisher: Localizer | None = None
        self._gateway: Any = None
        self._threads: dict[str, threading.Thread] = {}
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def _settings_dict(self) -> dict[str, Any]:
        values = asdict(self.settings)
        values["data_dir"] = str(values["data_dir"])
        return values

    def job_dir(self, job_id: str) -> Path:
        """Where a job's artifacts are copied for the API (the store's own folder in the ``file://`` default)."""
        return self.artifact_root / "jobs" / job_id

    def store(self) -> FsspecStore:
        """The store as the API's host reaches it (directly; the gateway serves it to the other nodes)."""
        if self._store is None:
            self._store = FsspecStore(self.access.url)
            self._publisher = Localizer(self._store)
        if self.access.gateway and self._gateway is None:
            from workers.artifacts.gateway import start_gateway

            self._gateway = start_gateway(self.access.url)
        return self._store

    def publish(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        """``spec`` with every checkpoint and dataset it names published to the store and named by reference (a
        spec that does not parse is left as it is: its driver ends the job FAILED with the reason)."""
        self.store()
        assert self._publisher is not None
        try:
            parsed = JobSpec.from_dict(spec, kind=kind)
        except MlacError:
            return spec
        return map_job_paths(parsed, self._publisher.portable).to_dict()

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        """Start (or re-attach to) the job's driver actor and watch it in a background thread.

        Raises ConfigError for an unknown kind or a spec that lacks what the kind needs.
        """
        check_spec(kind, spec)
        with self._lock:
            if self.is_running(job_id):
                return
            self._reported.discard(job_id)
            portable = self.publish(kind, spec)
            restarts = self.settings.actor_max_restarts
            driver_cls = ray.remote(  # type: ignore[call-overload]  # stubs lack max_concurrency
                max_restarts=restarts, max_task_retries=restarts, max_concurrency=4)(JobDriver)
            # Any node (nothing a driver reads is on the API's disk); MLAC_RAY_DRIVER_RESOURCES narrows the choice.
            driver = driver_cls.options(name=actor_name(job_id), namespace=NAMESPACE, lifetime="detached",
                                        get_if_exists=True, num_cpus=0,
                                        resources=dict(self.settings.driver_resources) or None).remote(
                job_id, kind, portable, self._settings_dict(), self.access.to_dict()
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

    def _comes_back(self, job_id: str, driver: Any) -> bool:
        """Whether Ray is restarting the job's driver (its node died): waits until the new incarnation answers."""
        deadline = time.monotonic() + REATTACH_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                ray.get_actor(actor_name(job_id), namespace=NAMESPACE)
            except ValueError:  # gone for good: its restarts ran out, or it was killed
                return False
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(driver.poll.remote(0), timeout=30)
                return True
            time.sleep(self.poll_s)
        return False

    def _watch(self, job_id: str, driver: Any, sink: ProgressSink) -> None:
        try:
            ref = driver.run.remote()
            cursor: dict[str, Any] = {}
            outcome: JobOutcome | None = None
            reattached = 0
            while outcome is None:
                done, _ = ray.wait([ref], timeout=self.poll_s)
                with contextlib.suppress(ray.exceptions.RayError):  # the driver may be restarting
                    self._forward(job_id, driver, sink, cursor)
                if done:
                    try:
                        outcome = JobOutcome.from_dict(ray.get(ref))
                    except ray.exceptions.RayError as exc:
                        if reattached < max(1, self.settings.actor_max_restarts) and self._comes_back(job_id, driver):
                            reattached += 1
                            log.warning("job %s: its driver was restarted (its node died?); re-attached", job_id)
                            ref = driver.run.remote()  # the new incarnation resumes from the store
                            continue
                        died = job_failure(exc)
                        outcome = JobOutcome("FAILED", failure=JobFailure(f"the job driver died: {died.cause}", died.detail))
            outcome = self._bring_home(job_id, outcome)
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

    def _bring_home(self, job_id: str, outcome: JobOutcome) -> JobOutcome:
        """Copy the job's folder from the store into :meth:`job_dir` and make ``result_path`` a path there."""
        local = self.job_dir(job_id)
        try:
            FolderMirror(self.store(), job_prefix(job_id), local).pull()
        except Exception as exc:
            if outcome.state != "SUCCEEDED":
                return outcome
            return JobOutcome("FAILED", failure=job_failure(exc))
        if outcome.result_path is None:
            return outcome
        return dataclasses.replace(outcome, result_path=str(local / outcome.result_path))

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
