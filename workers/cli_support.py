"""What the ``mlac-audit`` commands call for ``--ray``; imported lazily so that ``mlac`` never imports Ray.

- ``audit --ray [ADDRESS]``: :func:`ray_executor` (entry point ``mlac_audit.executors:ray``) gives the
  audit runner a :class:`~workers.executor.RayTrialExecutor`; the searches are driven from the CLI
  process and every trial runs as a Ray task (through ``MLAC_ARTIFACT_URL`` when it is set: no shared paths).
  :func:`run_audit_on_ray` is the same in one call.
- ``censor --ray [ADDRESS]``: :func:`run_censor_on_ray` runs MLAC in the restartable censor actor and
  feeds its progress records (the ``train_mlac`` format) to the CLI's callback.
- :func:`run_job_on_ray` runs any job kind through a named job driver (``mlac-job-<id>`` in the
  dashboard), exactly as the service does, and blocks until it ends.

Every path is made absolute first: Ray workers do not share the caller's working directory.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from mlac.errors import StoppedError
from mlac.job_failure import JobFailure
from workers.artifacts.access import ARTIFACT_URL_ENV, StoreAccess
from workers.artifacts.gateway import start_gateway
from workers.artifacts.localize import Localizer
from workers.artifacts.store import FsspecStore
from workers.censor_actor import censor_actor_class
from workers.executor import RayTrialExecutor
from workers.progress import SUCCEEDED, CallbackSink
from workers.resources import censor_options
from workers.runtime import RayHandle, init_ray
from workers.settings import RaySettings

Progress = Callable[[dict[str, Any]], None]


def cli_settings(address: str | None, max_group: int | None = None) -> RaySettings:
    """Settings for a CLI run: ``address`` (None or "auto": ``RAY_ADDRESS``, else a local Ray under
    ``$MLAC_DATA_DIR``, default ./data); ``max_group`` overrides ``MLAC_RAY_MAX_GROUP``."""
    return RaySettings.from_env(Path(os.environ.get("MLAC_DATA_DIR", "data")),
                                address=None if address in (None, "auto") else address, max_group=max_group)


def connect(address: str | None, settings: RaySettings | None = None) -> RayHandle:
    """Join or start Ray and print where the dashboard is."""
    handle = init_ray(settings or cli_settings(address))
    if handle.dashboard_url:
        print(f"Ray dashboard: {handle.dashboard_url} (token in {handle.token_path or 'RAY_AUTH_TOKEN'})")
    return handle


def ray_executor(address: str | None, max_group: int | None = None) -> RayTrialExecutor:
    """Join the Ray cluster at ``address`` (or start a local one) and return an executor that runs the
    audit's trials as Ray tasks, ``max_concurrency`` at a time (groups of up to ``max_group`` trials each).

    With ``MLAC_ARTIFACT_URL`` set, trials receive the checkpoints and datasets through that artifact store (each
    node fetches them into its cache), so the cluster's nodes need none of this machine's paths; without it they
    get this machine's paths (a local Ray, or nodes that mount them at the same place)."""
    settings = cli_settings(address, max_group)
    connect(address, settings)
    url = os.environ.get(ARTIFACT_URL_ENV, "").strip()
    if not url:
        return RayTrialExecutor.from_settings(settings)
    access = StoreAccess.for_url(url)
    if access.gateway:
        start_gateway(access.url)
    return RayTrialExecutor.from_settings(settings, localizer=Localizer(FsspecStore(access.url)), access=access)


def run_audit_on_ray(request: Any, out_dir: str | Path, address: str | None = None, progress: Progress | None = None,
                     *, storage_url: str | None = None) -> Any:
    """``mlac.audit.runner.run_audit`` with every trial as a Ray task; returns its AuditResult."""
    from mlac.audit.runner import run_audit

    return run_audit(request, Path(out_dir).resolve(), progress=progress, executor=ray_executor(address),
                     storage_url=storage_url)


def run_censor_on_ray(base: str | Path, dataset: str | Path, out_dir: str | Path, config: dict[str, Any], *,
                      address: str | None = None, split_seed: int = 0, progress: Progress | None = None,
                      settings: RaySettings | None = None, poll_s: float = 0.5) -> dict[str, Any]:
    """MLAC-censor ``base`` on ``dataset`` into ``out_dir`` in a Ray actor that Ray restarts after a crash
    (it resumes from its last saved state). ``progress`` receives each new step/validation record.
    Ctrl-C asks the actor to save its state and stop (run again to resume). Returns the actor's summary."""
    settings = settings or cli_settings(address)
    connect(address, settings)
    actor = censor_actor_class(settings.actor_max_restarts).options(
        **censor_options(settings), name=f"mlac-censor-{uuid.uuid4().hex[:8]}",
    ).remote(str(Path(base).resolve()), str(Path(dataset).resolve()), str(Path(out_dir).resolve()), dict(config),
             split_seed=split_seed, num_cpus=settings.censor_cpus)
    ref = actor.run.remote()
    seen: tuple[Any, Any] = (None, None)
    try:
        while True:
            done, _ = ray.wait([ref], timeout=poll_s)
            with contextlib.suppress(ray.exceptions.RayError):  # the actor may be restarting
                record = ray.get(actor.progress.remote(), timeout=10)
                mark = (record.get("event"), record.get("step"))
                if progress is not None and record.get("step") is not None and mark != seen:
                    seen = mark
                    progress(record)
            if done:
                return dict(ray.get(ref))
    except KeyboardInterrupt:
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(actor.stop.remote(), timeout=10)
            ray.wait([ref], timeout=60)
        raise
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()
        if isinstance(cause, StoppedError):
            raise StoppedError(str(cause)) from exc
        raise
    finally:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


def run_job_on_ray(kind: str, spec: dict[str, Any], artifact_root: str | Path, *, address: str | None = None,
                   job_id: str | None = None, progress: Progress | None = None,
                   settings: RaySettings | None = None) -> dict[str, Any]:
    """Run one job (censor | audit | censor_then_audit) through a named job driver, as the service does;
    block until it ends and return ``{job_id, state, result_path, error, error_detail}`` (state SUCCEEDED,
    FAILED with a one-line cause in ``error`` and the traceback in ``error_detail``, or CANCELLED). Ctrl-C
    cancels the job."""
    from workers.jobs import JobRunner

    settings = settings or cli_settings(address)
    connect(address, settings)
    job_id = job_id or time.strftime("cli-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    ended = threading.Event()
    outcome: dict[str, Any] = {"job_id": job_id}

    def on_finished(_: str, state: str, result_path: str | None, failure: JobFailure | None) -> None:
        outcome.update(state=state, result_path=result_path, error=failure.cause if failure else None,
                       error_detail=failure.detail if failure else None)
        ended.set()

    runner = JobRunner(settings, Path(artifact_root).resolve())
    runner.submit(job_id, kind, spec, CallbackSink(lambda _, event: progress(event) if progress else None, on_finished))
    try:
        while not ended.wait(1.0):
            pass
    except KeyboardInterrupt:
        runner.cancel(job_id)
        ended.wait(60)
        raise
    return outcome


__all__ = ["SUCCEEDED", "cli_settings", "connect", "ray_executor", "run_audit_on_ray", "run_censor_on_ray",
           "run_job_on_ray"]
