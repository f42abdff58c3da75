"""What each unit of work asks Ray for, and how a task adopts what Ray gave it."""

from __future__ import annotations

import math
from typing import Any

import ray
import torch

from workers.settings import RaySettings


def cluster_gpus() -> float:
    """GPUs in the connected Ray cluster (0 when Ray is not initialised)."""
    return float(ray.cluster_resources().get("GPU", 0.0)) if ray.is_initialized() else 0.0


def trial_gpus(settings: RaySettings) -> float:
    """GPUs one trial asks for: the setting, or (auto) ``gpu_share`` of a GPU when the cluster has any."""
    if settings.trial_gpus is not None:
        return settings.trial_gpus
    return settings.gpu_share if cluster_gpus() > 0 else 0.0


def censor_gpus(settings: RaySettings) -> float:
    """GPUs a censoring run asks for: the setting, or (auto) one GPU when the cluster has any."""
    if settings.censor_gpus is not None:
        return settings.censor_gpus
    return 1.0 if cluster_gpus() > 0 else 0.0


def trial_options(num_cpus: float, num_gpus: float, resources: dict[str, float] | None, max_retries: int) -> dict[str, Any]:
    """``.options(...)`` for one attack trial task (fractional GPUs let small trials share a GPU).

    ``retry_exceptions`` stays False: a trial's own error is a result (``ok=False``), only a dead
    worker process is retried.
    """
    opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": max_retries, "retry_exceptions": False}
    if resources:
        opts["resources"] = dict(resources)
    return opts


def censor_options(settings: RaySettings) -> dict[str, Any]:
    """``.options(...)`` for a censor actor."""
    return {"num_cpus": settings.censor_cpus, "num_gpus": censor_gpus(settings)}


def assigned_device() -> torch.device:
    """CUDA when Ray assigned this worker a GPU, else CPU (never a GPU Ray did not grant)."""
    if ray.is_initialized() and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def adopt_assigned_cpus(num_cpus: float) -> int:
    """Set torch's thread count to the CPUs Ray assigned (at least one); return it."""
    threads = max(1, math.floor(num_cpus))
    torch.set_num_threads(threads)
    return threads
