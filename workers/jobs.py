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
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import ray

from mlac.audit.protocol import AuditRequest
from mlac.audit.runner import run_audit
from mlac.errors import ConfigError, MlacError, StoppedError
from workers.censor_actor import censor_actor_class
from workers.executor import RayTrialExecutor
from workers.metrics import audit_metrics
from workers.settings import RaySettings

KINDS = ("censor", "audit", "censor_then_audit")
NAMESPACE = "mlac-audit"


def actor_name(job_id: str) -> str:
    """The Ray actor name of a job's driver."""
    return f"mlac-job-{job_id}"


class ProgressSink(Protocol):
    """Where job progress goes (the service's job store implements this)."""

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """A progress event (stage, trials done/total, best so far, ...)."""

    def finished(self, job_id: str, state: str, result_path: str | None, error: str | None) -> None:
        """The job ended: SUCCEEDED, FAILED (with the traceback) or CANCELLED."""


class JobDriver:
    """Runs one job; plain logic, made remote by :func:`JobRunner.submit`."""

    def __init__(self, job_id: str, kind: str, spec: dict[str, Any], out_dir: str, settings: dict[str, Any]) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown job kind {kind!r}; choose from {KINDS}")
        self.job_id, self.kind, self.spec, self.out_dir = job_id, kind, spec, Path(out_dir)
        self.settings = RaySettings(**{**settings, "data_dir": Path(settings.get("data_dir", "data"))})
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
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
        with self._lock:
            return list(self._events[since:])

    def nodes(self) -> list[str]:
        """Ray node ids on which trials ran."""
        return sorted(self.executor.nodes) if self.executor is not None else []

    def _emit(self, event: dict[str, Any]) -> None:
        clean = {k: v for k, v in event.items() if isinstance(v, (int, float, str, bool, type(None)))}
        clean["t"] = time.time()
        with self._lock:
            self._events.append(clean)
        best = event.get("best_report_accuracy")
        if isinstance(best, float) and event.get("task") == "harmful":
            audit_metrics()["best_harmful"].set(best, tags={"job": self.job_id})

    def run(self) -> dict[str, Any]:
        """Run the job to its end; returns {state, result_path, error}. Never raises."""
        try:
            result_path = self._run()
            return {"state": "SUCCEEDED", "result_path": result_path, "error": None}
        except StoppedError as exc:
            return {"state": "CANCELLED", "result_path": None, "error": str(exc)}
        except MlacError as exc:
            return {"state": "FAILED", "result_path": None, "error": f"{type(exc).__name__} [{exc.code}]: {exc}"}
        except Exception:
            if self._stop.is_set():
                return {"state": "CANCELLED", "result_path": None, "error": "cancelled"}
            return {"state": "FAILED", "result_path": None, "error": traceback.format_exc()}

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
        request = request.replace(search=asdict(request.search) | {"parallelism": self.settings.max_concurrency})
        self.executor = RayTrialExecutor(
            job_id=self.job_id, num_cpus=self.settings.trial_cpus, num_gpus=self.settings.trial_gpus,
            resources=self.settings.trial_resources, max_retries=self.settings.trial_max_retries,
            should_stop=self._stop.is_set,
        )
        audit_dir = self.out_dir / "audit"
        run_audit(request, audit_dir, progress=self._emit, should_stop=self._stop.is_set, executor=self.executor)
        return str(audit_dir)

    def _run_censor(self) -> str:
        self._emit({"stage": "censor"})
        out = self.out_dir / "censored"
        actor_cls = censor_actor_class(self.settings.actor_max_restarts)
        self._censor = actor_cls.options(num_cpus=self.settings.censor_cpus, num_gpus=self.settings.censor_gpus).remote(
            self.spec["base"], self.spec["dataset"], str(out), dict(self.spec.get("censor_config", {})),
            num_cpus=self.settings.censor_cpus,
        )
        ref = self._censor.run.remote()
        while True:
            done, _ = ray.wait([ref], timeout=1.0)
            with contextlib.suppress(ray.exceptions.RayError):  # the censor actor may be restarting
                self._emit({"stage": "censor", **ray.get(self._censor.progress.remote(), timeout=10)})
            if done:
                break
        summary = ray.get(ref)
        self._censor = None
        return str(summary["out_dir"])


class JobRunner:
    """Submits jobs as named detached driver actors and forwards their progress to a sink."""

    def __init__(self, settings: RaySettings, artifact_root: Path, poll_s: float = 1.0) -> None:
        self.settings = settings
        self.artifact_root = Path(artifact_root)
        self.poll_s = poll_s
        self._threads: dict[str, threading.Thread] = {}

    def _settings_dict(self) -> dict[str, Any]:
        values = asdict(self.settings)
        values["data_dir"] = str(values["data_dir"])
        return values

    def job_dir(self, job_id: str) -> Path:
        """Where a job's artifacts go."""
        return self.artifact_root / "jobs" / job_id

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: ProgressSink) -> None:
        """Start (or re-attach to) the job's driver actor and watch it in a background thread."""
        if kind not in KINDS:
            raise ConfigError(f"unknown job kind {kind!r}; choose from {KINDS}")
        name = actor_name(job_id)
        driver_cls = ray.remote(max_restarts=self.settings.actor_max_restarts, max_task_retries=self.settings.actor_max_restarts,
                                max_concurrency=4)(JobDriver)
        driver = driver_cls.options(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0).remote(
            job_id, kind, spec, str(self.job_dir(job_id)), self._settings_dict()
        )
        thread = threading.Thread(target=self._watch, args=(job_id, driver, sink), name=f"watch-{job_id}", daemon=True)
        self._threads[job_id] = thread
        thread.start()

    def _watch(self, job_id: str, driver: Any, sink: ProgressSink) -> None:
        ref = driver.run.remote()
        seen = 0
        outcome: dict[str, Any] | None = None
        while outcome is None:
            done, _ = ray.wait([ref], timeout=self.poll_s)
            try:
                for event in ray.get(driver.events.remote(seen), timeout=30):
                    seen += 1
                    sink.event(job_id, event)
            except ray.exceptions.RayError:
                pass
            if done:
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    outcome = {"state": "FAILED", "result_path": None, "error": f"job driver died: {exc}"}
        sink.finished(job_id, outcome["state"], outcome.get("result_path"), outcome.get("error"))
        ray.kill(driver, no_restart=True)

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop (no-op for an unknown or finished job)."""
        try:
            driver = ray.get_actor(actor_name(job_id), namespace=NAMESPACE)
        except ValueError:
            return
        ray.get(driver.stop.remote(), timeout=30)

    def is_running(self, job_id: str) -> bool:
        """Whether the job's watcher thread is still alive in this process."""
        thread = self._threads.get(job_id)
        return thread is not None and thread.is_alive()

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until the job's watcher has reported ``finished`` to the sink."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)


class CallbackSink:
    """A sink from two callables (the CLI's progress bar)."""

    def __init__(self, on_event: Callable[[str, dict[str, Any]], None], on_finished: Callable[[str, str, str | None, str | None], None]) -> None:
        self.on_event, self.on_finished = on_event, on_finished

    def event(self, job_id: str, event: dict[str, Any]) -> None:
        """Forward a progress event."""
        self.on_event(job_id, event)

    def finished(self, job_id: str, state: str, result_path: str | None, error: str | None) -> None:
        """Forward the end of the job."""
        self.on_finished(job_id, state, result_path, error)
