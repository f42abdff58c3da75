"""Datasets on disk: parquet plus a ``.task.json`` sidecar holding the task spec (label names).

This pair is how every layer passes a dataset by path (CLI, Ray workers, the service).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset

from mlac.errors import DataError
from mlac.tasks import TaskSpec

REQUIRED_COLUMNS = ("id", "text", "text_with_first_sentence")


def task_path(path: str | Path) -> Path:
    """Sidecar path of a dataset file: ``data.parquet`` -> ``data.task.json``."""
    p = Path(path)
    return p.with_name(p.stem + ".task.json")


def save_dataset(ds: Dataset, task: TaskSpec, path: str | Path) -> Path:
    """Write ``ds`` as parquet and ``task`` beside it; return the parquet path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = ds.with_format("arrow")[:] if len(ds) else ds.data.table.slice(0, 0)  # applies select()/shuffle()
    pq.write_table(table, str(p))
    spec = asdict(task)
    task_path(p).write_text(json.dumps(spec, indent=2, sort_keys=True), encoding="utf-8")
    return p


def load_saved_dataset(path: str | Path) -> tuple[Dataset, TaskSpec]:
    """Read a dataset written by :func:`save_dataset` and check that it has what the task needs."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"dataset file not found: {p}")
    sidecar = task_path(p)
    if not sidecar.is_file():
        raise DataError(f"{p}: missing its task file {sidecar.name} (write datasets with `mlac-audit data synth` or save_dataset)")
    try:
        spec = json.loads(sidecar.read_text(encoding="utf-8"))
        task = TaskSpec(
            text_field=spec.get("text_field", "text"),
            beneficial_label=spec.get("beneficial_label", "profession"),
            harmful_label=spec.get("harmful_label", "gender"),
            beneficial_names=tuple(spec.get("beneficial_names", ())),
            harmful_names=tuple(spec.get("harmful_names", ("female", "male"))),
        )
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise DataError(f"{sidecar}: not a valid task file ({exc})") from exc
    try:
        table = pq.read_table(str(p))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{p}: not a readable parquet file ({exc})") from exc
    ds = Dataset(table)
    check_columns(ds, (*REQUIRED_COLUMNS, task.beneficial_label, task.harmful_label), p)
    check_labels(ds, task, p)
    return ds, task


def check_labels(ds: Dataset, task: TaskSpec, where: str | Path) -> None:
    """Raise DataError unless every label is an integer index into the task's label names."""
    for column, names in ((task.beneficial_label, task.beneficial_names), (task.harmful_label, task.harmful_names)):
        values = ds.unique(column) if len(ds) else []
        if any(not isinstance(v, int) or isinstance(v, bool) for v in values):
            raise DataError(f"{where}: column {column!r} must hold integer class indices, found {sorted(map(repr, values))[:5]}")
        bad = [v for v in values if names and not 0 <= v < len(names)]
        if bad:
            raise DataError(
                f"{where}: column {column!r} has label(s) {sorted(bad)[:5]} outside 0..{len(names) - 1} "
                f"(the task file names {len(names)} classes: {list(names)[:8]})"
            )


def check_columns(ds: Dataset, needed: tuple[str, ...], where: str | Path) -> None:
    """Raise DataError naming every missing column and the columns present."""
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; the file has {ds.column_names}")
