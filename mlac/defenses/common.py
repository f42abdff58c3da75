"""What the built-in defenses share: typed configs from plain dicts, and loading a defense's inputs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from mlac.data.splits import Splits
from mlac.errors import ConfigError
from mlac.models import LoadedModel
from mlac.tasks import TaskSpec

C = TypeVar("C")
DEVICES = "'auto', 'cpu' or 'cuda[:N]'"


def config_from_dict(cls: type[C], values: Mapping[str, Any], what: str) -> C:
    """``cls(**values)`` for a frozen config dataclass; unknown keys and bad values are a ConfigError that names them."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {what} config keys {unknown}; known keys: {sorted(known)}")
    try:
        return cls(**dict(values))
    except TypeError as exc:
        raise ConfigError(f"bad {what} config: {exc}") from exc


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON form of a config dataclass (tuples become lists)."""
    return {f.name: (list(v) if isinstance(v := getattr(config, f.name), tuple) else v)
            for f in dataclasses.fields(config)}


class DataclassConfigCodec:
    """``config_from_dict`` / ``config_to_dict`` of a defense whose config is the frozen dataclass ``config_type``."""

    name: str
    config_type: type[Any]

    def config_from_dict(self, values: Mapping[str, Any]) -> Any:
        return config_from_dict(self.config_type, values, self.name)

    def config_to_dict(self, config: Any) -> dict[str, Any]:
        return config_to_dict(config)


def check_int(name: str, value: Any, low: int) -> None:
    """ConfigError unless ``value`` is an integer >= ``low``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """ConfigError unless ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")


def check_device(value: Any) -> None:
    """ConfigError unless ``value`` names a device :func:`mlac.device.resolve_device` takes."""
    if not isinstance(value, str) or not (value in ("auto", "cpu") or value.startswith("cuda")):
        raise ConfigError(f"device must be {DEVICES}, got {value!r}")


@dataclass(frozen=True)
class DefenseInputs:
    """A defense's inputs, loaded: the base model, the dataset's task and its splits."""

    base: LoadedModel
    task: TaskSpec
    splits: Splits
    device: torch.device


def load_inputs(base: str, dataset: str, split_seed: int, device: str) -> DefenseInputs:
    """Load the saved dataset, split it with ``split_seed`` and load the base checkpoint onto ``device``
    (a checkpoint without a beneficial head gets a fresh one sized to the task)."""
    from mlac.data import load_saved_dataset, make_splits
    from mlac.device import resolve_device
    from mlac.models import load_checkpoint

    ds, task = load_saved_dataset(dataset)
    splits = make_splits(ds, seed=split_seed)
    dev = resolve_device(device)
    loaded = load_checkpoint(base, num_beneficial=len(task.beneficial_names) or None, device=dev)
    return DefenseInputs(base=loaded, task=task, splits=splits, device=dev)
