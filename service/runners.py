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

from mlac.errors import MlacError, StoppedError
from mlac.job_failure import JobFailure, failure_of

log = logging.getLogger(__name__)
KINDS = ("censor", "audit", "censor_then_audit")


class ProgressSink(Protocol):
    """Where a runner reports (the service's :class:`~service.dispatcher.StoreSink`)."""

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """A progress event."""

    def finished(self, job_id: str, state: str, result_path: str | None, failure: JobFailure | None) -> None:
        """The job ended: SUCCEEDED, FAILED (with its one-line cause and the traceback) or CANCELLED."""


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
        state, result_path, failure = "FAILED", None, None
        try:
            result_path = self._execute(job_id, kind, spec, sink, stop)
            state = "SUCCEEDED"
        except StoppedError as exc:
            state, failure = "CANCELLED", JobFailure(str(exc) or "cancelled")
        except Exception as exc:  # MlacError: its type, code and message; anything else: its last line
            failure = failure_of(exc, roots=(self.artifact_root.parent, self.artifact_root))
            if stop.is_set() and not isinstance(exc, MlacError):  # what a stop interrupted, not a user error
                state = "CANCELLED"
        try:
            sink.finished(job_id, state, result_path, failure)
        except Exception:  # the sink logs its own failures; a runner thread must not die silently
            log.exception("sink.finished failed for job %s", job_id)

    def _execute(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink, stop: threading.Event) -> str:
        from mlac.audit.protocol import AuditRequest
        from mlac.audit.runner import run_audit

        def emit(event: dict[str, Any]) -> None:
            sink.event(job_id, {k: v for k, v in event.items() if isinstance(v, (int, float, str, bool, type(None)))})

        out = self.job_dir(job_id)
        out.mkdir(parents=True, exist_ok=True)
        censored: str | None = None
        if kind in ("censor", "censor_then_audit"):
            censored = self._censor(spec, out / "censored", emit, stop)
            if kind == "censor":
                return censored
        request = AuditRequest.from_dict(dict(spec["request"]))
        if censored is not None:
            request = request.replace(models=(*request.models, censored))
        audit_dir = out / "audit"
        run_audit(request, audit_dir, progress=emit, should_stop=stop.is_set, storage_url=self.storage_url,
                  study_namespace=job_id)
        return str(audit_dir)

    @staticmethod
    def _censor(spec: dict[str, Any], out: Path, emit: Any, stop: threading.Event) -> str:
        from mlac.censor.config import MLACConfig
        from mlac.censor.train import train_mlac
        from mlac.data import load_saved_dataset, make_splits
        from mlac.models import load_checkpoint

        emit({"stage": "censor"})
        config = MLACConfig.from_dict(dict(spec.get("censor_config", {})))
        ds, task = load_saved_dataset(spec["dataset"])
        splits = make_splits(ds, seed=0)
        loaded = load_checkpoint(spec["base"], num_beneficial=len(task.beneficial_names) or None)
        train_mlac(loaded.model, loaded.tokenizer, splits.train, task, config, out_dir=out,
                   progress=lambda e: emit({"stage": "censor", **e}), should_stop=stop.is_set, resume=True,
                   parent_sha256=loaded.sha256, dataset_fingerprint=splits.fingerprints["train"],
                   beneficial_names=task.beneficial_names)
        return str(out)


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

    @property
    def dashboard_url(self) -> str | None:
        """Where the Ray dashboard listens (127.0.0.1 in the embedded default)."""
        return self.handle.dashboard_url

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        if self.storage_url is not None and kind != "censor":
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
