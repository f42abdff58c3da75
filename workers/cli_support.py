"""Glue for ``mlac-audit audit ... --ray [ADDRESS]``: found through the entry point
``mlac_audit.executors:ray`` so that ``mlac`` never imports this package."""

from __future__ import annotations

import os
from pathlib import Path

from workers.executor import RayTrialExecutor
from workers.runtime import init_ray
from workers.settings import RaySettings


def ray_executor(address: str | None) -> RayTrialExecutor:
    """Join the Ray cluster at ``address`` (or start a local one under ``$MLAC_DATA_DIR``, default ./data)
    and return an executor that runs each batch of trials as parallel Ray tasks."""
    settings = RaySettings.from_env(Path(os.environ.get("MLAC_DATA_DIR", "data")), address=address)
    handle = init_ray(settings)
    if handle.dashboard_url:
        print(f"Ray dashboard: {handle.dashboard_url} (token in {handle.token_path or 'RAY_AUTH_TOKEN'})")
    executor = RayTrialExecutor(num_cpus=settings.trial_cpus, num_gpus=settings.trial_gpus,
                                resources=settings.trial_resources, max_retries=settings.trial_max_retries)
    executor.parallelism = settings.max_concurrency
    return executor
