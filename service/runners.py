"""Job runners: the Ray runner (``workers.jobs.JobRunner``) and an in-process fallback (``--no-ray``).

Both implement the same protocol (docs/INTERFACES.md, "service <-> workers"): ``submit(job_id, kind,
spec, sink)``, ``cancel(job_id)``, ``is_running(job_id)``, ``shutdown()``. A job's artifacts live in
``<artifact_root>/jobs/<job_id>``; running the same job again into that folder resumes it (the censor
state and the Optuna studies are kept there), which is how a job survives a service restart.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Protocol

from mlac.contracts import JobOutcome
from mlac.job_failure import JobFailure, failure_of
from mlac.jobs import JOB_KINDS, JobSpec, audits, failed_outcome, run_job

log = logging.getLogger(__name__)
#: Every job kind a runner takes (aliases included: ``censor`` is ``defend`` with MLAC), from :mod:`mlac.jobs`.
KINDS = JOB_KINDS


class ProgressSink(Protocol):
    """Where a runner reports (the service's :class:`~service.dispatcher.StoreSink`)."""

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """A progress event."""

    def finished(self, job_id: str, outcome: JobOutcome) -> None:
        """The job ended: SUCCEEDED (with its result and the audit's verdict), FAILED (with its one-line cause and
        the traceback) or CANCELLED."""


class Runner(Protocol):
    """What the dispatcher drives."""

    name: str

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        """Start the job in the background (re-attaching/resuming when it ran before)."""

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop (no-op when unknown)."""

    def is_running(self, job_id: str) -> bool:
        """Whether this process is running the job."""

    def shutdown(self) -> None:
        """Stop everything this runner started (jobs are left to resume later)."""


class InProcessRunner:
    """Runs each job in a thread of this process, calling mlac directly (no Ray)."""

    name = "inprocess"

    def __init__(self, artifact_root: Path, storage_url: str | None = None) -> None:
        self.artifact_root = Path(artifact_root)
        self.storage_url = storage_url
        self._stops: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def job_dir(self, job_id: str) -> Path:
        """Where a job's artifacts go."""
        return self.artifact_root / "jobs" / job_id

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(job_id, kind, spec, sink, stop), name=f"job-{job_id}", daemon=True)
        with self._lock:
            self._stops[job_id], self._threads[job_id] = stop, thread
        thread.start()

    def cancel(self, job_id: str) -> None:
        with self._lock:
            stop = self._stops.get(job_id)
        if stop is not None:
            stop.set()

    def is_running(self, job_id: str) -> bool:
        with self._lock:
            thread = self._threads.get(job_id)
        return thread is not None and thread.is_alive()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until the job's thread ends (tests)."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def shutdown(self) -> None:
        with self._lock:
            stops, threads = list(self._stops.values()), list(self._threads.values())
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=30)

    def _run(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink, stop: threading.Event) -> None:
        roots = (self.artifact_root.parent, self.artifact_root)

        def describe(exc: BaseException) -> JobFailure:
            return failure_of(exc, roots=roots)

        def emit(event: dict[str, Any]) -> None:
            sink.event(job_id, {k: v for k, v in event.items() if isinstance(v, (int, float, str, bool, type(None)))})

        try:
            job = JobSpec.from_dict(spec, kind=kind)
            if job.optuna_storage is None and self.storage_url is not None and audits(job.kind):
                job = job.replace(optuna_storage=self.storage_url)
        except Exception as exc:  # a spec that does not parse: reported like any failure of the job
            outcome = failed_outcome(exc, stopped=stop.is_set(), describe=describe)
        else:
            outcome = run_job(job, self.job_dir(job_id), progress=emit, should_stop=stop.is_set, study_namespace=job_id,
                              describe_failure=describe)
        try:
            sink.finished(job_id, outcome)
        except Exception:  # the sink logs its own failures; a runner thread must not die silently
            log.exception("sink.finished failed for job %s", job_id)


class RayRunner:
    """The Ray layer's :class:`workers.jobs.JobRunner`, started on a local or remote Ray (token auth on).

    ``storage_url``: where the job drivers keep the audits' Optuna studies; the service passes its
    PostgreSQL ``DATABASE_URL`` (the studies then live in the job store's database, which every node of a
    cluster reaches). None keeps each job's studies in its ``audit/optuna.db`` (the SQLite default: the
    store's file is local to the API host, and a driver may run on another node).
    """

    name = "ray"

    def __init__(self, artifact_root: Path, data_dir: Path, *, address: str | None, num_cpus: int | None,
                 max_concurrency: int, storage_url: str | None = None) -> None:
        from service.driver_secrets import driver_storage_url
        from workers.jobs import JobRunner
        from workers.runtime import init_ray
        from workers.settings import RaySettings

        # before Ray starts: its workers inherit PGPASSFILE, and no password is ever in a driver's arguments
        self.storage_url = driver_storage_url(storage_url, Path(data_dir) / "secrets")
        self.settings = RaySettings.from_env(data_dir, address=address, num_cpus=num_cpus, max_concurrency=max_concurrency)
        self.handle = init_ray(self.settings)
        self.runner = JobRunner(self.settings, artifact_root, poll_s=1.0)
        try:  # a bad MLAC_ARTIFACT_URL (unknown scheme, missing s3fs) stops the start-up, not the first job
            self.runner.store()
        except Exception:
            self.shutdown()
            raise

    @property
    def dashboard_url(self) -> str | None:
        """Where the Ray dashboard listens (127.0.0.1 in the embedded default)."""
        return self.handle.dashboard_url

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        if self.storage_url is not None and audits(kind):
            spec = {**spec, "optuna_storage": self.storage_url}
        self.runner.submit(job_id, kind, spec, sink)

    def cancel(self, job_id: str) -> None:
        self.runner.cancel(job_id)

    def is_running(self, job_id: str) -> bool:
        return self.runner.is_running(job_id)

    def shutdown(self) -> None:
        from workers.runtime import shutdown_ray

        if self.handle.started_locally:
            shutdown_ray()
