"""Resumable MLAC state on disk: tensors in safetensors, everything else in JSON. Never pickle.

A state is two files in one directory, ``state.safetensors`` and ``state.json``, each written to a
temporary name and moved into place; the JSON (written last) records the step, which the tensors'
metadata repeats so that a torn write is detected rather than silently mixed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mlac.errors import CheckpointError

TENSORS_FILE = "state.safetensors"
META_FILE = "state.json"
FORMAT_VERSION = 1


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """The per-parameter state of a torch optimiser as flat named tensors (``prefix/idx/key``)."""
    out: dict[str, torch.Tensor] = {}
    for idx, per_param in opt.state_dict()["state"].items():
        for key, value in per_param.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            out[f"{prefix}/{idx}/{key}"] = tensor
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Inverse of :func:`optimizer_tensors` for an optimiser built with the same parameter groups."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if not name.startswith(prefix + "/"):
            continue
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = tensor
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def save_state(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and ``meta`` (JSON-able, must hold ``step``) atomically into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    step = str(int(meta["step"]))
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp_t = directory / (TENSORS_FILE + ".tmp")
    tmp_m = directory / (META_FILE + ".tmp")
    save_file(cpu, str(tmp_t), metadata={"step": step, "format_version": str(FORMAT_VERSION)})
    tmp_m.write_text(json.dumps({**meta, "format_version": FORMAT_VERSION}, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp_t, directory / TENSORS_FILE)
    os.replace(tmp_m, directory / META_FILE)


def has_state(directory: Path) -> bool:
    """Whether ``directory`` holds a saved state."""
    return (directory / META_FILE).is_file() and (directory / TENSORS_FILE).is_file()


def load_state(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a state written by :func:`save_state`; a torn or foreign state is a CheckpointError."""
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        tensors = load_file(str(directory / TENSORS_FILE))
        from safetensors import safe_open

        with safe_open(str(directory / TENSORS_FILE), framework="pt") as fh:
            tensor_meta = fh.metadata() or {}
    except (OSError, json.JSONDecodeError, SafetensorError) as exc:
        raise CheckpointError(
            f"{directory}: unreadable MLAC resume state ({exc}); delete the folder or pass resume=False",
            code="bad_resume_state",
        ) from exc
    if meta.get("format_version") != FORMAT_VERSION or tensor_meta.get("step") != str(meta.get("step")):
        raise CheckpointError(
            f"{directory}: inconsistent MLAC resume state (torn write or another version); delete the folder "
            "or pass resume=False",
            code="bad_resume_state",
        )
    return tensors, meta
