"""What each unit of work asks Ray for, and how a task adopts what Ray gave it."""

from __future__ import annotations

import math
from typing import Any

import ray
import torch


def trial_options(num_cpus: float, num_gpus: float, resources: dict[str, float] | None, max_retries: int) -> dict[str, Any]:
    """``.options(...)`` for one attack trial task (fractional GPUs let small trials share a GPU)."""
    opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": max_retries, "retry_exceptions": False}
    if resources:
        opts["resources"] = dict(resources)
    return opts


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
