"""A user's dataset file (JSONL, JSON or parquet with a text column and two label columns), read as untrusted.

Uploaded files reach this from the API, so every way a small file could crash or exhaust the process is a
:class:`~mlac.errors.DataError` instead: JSON is parsed strictly (:mod:`mlac.strict_json`: no NaN, bounded
depth and integer length), every row must be an object with every column, the text a string, and labels
integer class indices in small ranges (:class:`~mlac.limits.DatasetLimits`: beneficial 0..999, harmful 0/1;
a float label is refused unless it is a whole number, never truncated). A parquet file's row count and
decoded size are checked before its rows are built (a compressed, dictionary-encoded file can be a thousand
times smaller than its contents), and only the needed columns are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets import Dataset

from mlac.data.scrub import drop_first_sentence, scrub_pronouns
from mlac.errors import DataError
from mlac.limits import DATASET_LIMITS, DatasetLimits
from mlac.strict_json import StrictJsonError, loads_strict
from mlac.tasks import TaskSpec

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def load_dataset_file(path: str | Path, text_column: str, label_columns: tuple[str, str], *,
                      label_names: dict[str, tuple[str, ...]] | None = None,
                      limits: DatasetLimits = DATASET_LIMITS) -> tuple[Dataset, TaskSpec]:
    """Read a user's JSONL/parquet file with a text column and (beneficial, harmful) integer labels.

    The result has the project's columns (id, text, text_with_first_sentence, profession, gender) with
    pronouns scrubbed; label names default to the label values seen.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"dataset file not found: {p}")
    needed = (text_column, *label_columns)
    rows = read_rows(p, needed, limits)
    if not rows:
        raise DataError(f"{p}: the file has no rows")
    beneficial, harmful = label_columns
    out: dict[str, list[Any]] = {"id": [], "text": [], "text_with_first_sentence": [], "profession": [], "gender": []}
    for i, row in enumerate(rows):
        _check_row(row, i, needed, p)
        text = row[text_column]
        if not isinstance(text, str):
            raise DataError(f"{p}: row {i}: {text_column!r} must be a string, got {type(text).__name__}")
        b = _label(row, beneficial, i, p)
        h = _label(row, harmful, i, p)
        if not 0 <= b < limits.max_beneficial_classes:
            raise DataError(f"{p}: row {i}: {beneficial}={b}: beneficial labels are class indices "
                            f"0..{limits.max_beneficial_classes - 1}")
        if not 0 <= h < limits.harmful_classes:
            allowed = " or ".join(str(c) for c in range(limits.harmful_classes))
            raise DataError(f"{p}: row {i}: {harmful}={h}: the harmful label must be {allowed} (the harmful task is binary)")
        whole = scrub_pronouns(text)
        out["id"].append(str(row.get("id", f"row-{i:07d}"))[:200])
        out["text"].append(drop_first_sentence(whole) or whole)
        out["text_with_first_sentence"].append(whole)
        out["profession"].append(b)
        out["gender"].append(h)
    names = label_names or {}
    n_b, n_h = max(out["profession"]) + 1, max(out["gender"]) + 1
    if n_b < 2 or n_h < 2:
        raise DataError(f"{p}: each label column needs at least two classes")
    task = TaskSpec(
        beneficial_names=names.get("beneficial", tuple(str(i) for i in range(n_b))),
        harmful_names=names.get("harmful", tuple(str(i) for i in range(n_h))),
    )
    return Dataset.from_dict(out), task


def _check_row(row: Any, i: int, needed: tuple[str, ...], p: Path) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{p}: row {i} is a {type(row).__name__}, not an object with columns {list(needed)}")
    missing = [c for c in needed if c not in row]
    if missing and i == 0:
        raise DataError(f"{p}: missing column(s) {missing}; the file has {list(row)[:20]}")
    if missing:
        raise DataError(f"{p}: row {i} lacks column(s) {missing}")


def _label(row: dict[str, Any], column: str, i: int, p: Path) -> int:
    """An integer class index; a whole-number float counts (parquet writers often store labels as floats)."""
    value = row[column]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise DataError(f"{p}: row {i}: labels must be integers ({column}={value!r:.40} is not a whole number)")


def read_rows(p: Path, columns: tuple[str, ...], limits: DatasetLimits = DATASET_LIMITS) -> list[Any]:
    """The rows of a JSONL/JSON/parquet file (parquet: only ``columns`` and ``id``), within ``limits``."""
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return _parquet_rows(p, columns, limits)
    if suffix in JSON_SUFFIXES:
        return _json_rows(p, limits)
    raise DataError(f"{p}: unsupported file type {suffix!r}; use parquet, json or jsonl")


def _json_rows(p: Path, limits: DatasetLimits) -> list[Any]:
    """A .json array of rows, or one row per line (JSONL; a .json file that is not an array too)."""
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: cannot read it as {p.suffix[1:]} (not UTF-8: {exc.reason})") from None
    if p.suffix.lower() == ".json" and text.lstrip().startswith("["):
        rows = _parse(text, p, "")
    else:  # split on newlines only: a JSON string may hold U+2028 and other line breaks of str.splitlines()
        lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
        rows = [_parse(line, p, f"line {n}: ") for n, line in lines[:limits.max_rows + 1]]
    if len(rows) > limits.max_rows:
        raise DataError(f"{p}: more than the {limits.max_rows} rows a dataset may have")
    return rows


def _parse(text: str, p: Path, where: str) -> Any:
    try:
        return loads_strict(text)
    except StrictJsonError as exc:
        raise DataError(f"{p}: {where}not valid JSON ({exc})") from None


def _parquet_rows(p: Path, columns: tuple[str, ...], limits: DatasetLimits) -> list[dict[str, Any]]:
    try:
        meta = pq.ParquetFile(str(p))
        schema = meta.schema_arrow
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DataError(f"{p}: missing column(s) {missing}; the file has {schema.names[:20]}")
        if meta.metadata.num_rows > limits.max_rows:
            raise DataError(f"{p}: {meta.metadata.num_rows} rows, more than the {limits.max_rows} a dataset may have")
        nested = [c for c in columns if pa.types.is_nested(schema.field(c).type)]
        if nested:  # a list or struct column can hide a dictionary bomb; no text or label is one anyway
            raise DataError(f"{p}: column(s) {nested} are nested; the text must be a string column and the labels "
                            "integers")
        wanted = list(dict.fromkeys(c for c in (*columns, "id") if c in schema.names
                                    and not pa.types.is_nested(schema.field(c).type)))
        _check_decoded(_uncompressed_bytes(meta.metadata, wanted), limits, p)
        strings = [c for c in wanted if _is_bytes_like(schema.field(c).type)]
        table = pq.read_table(str(p), columns=wanted, read_dictionary=strings)
        _check_decoded(sum(_decoded_bytes(table.column(c)) for c in wanted), limits, p)
        return table.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{p}: cannot read it as parquet ({str(exc)[:200]})") from None


def _check_decoded(size: int, limits: DatasetLimits, p: Path) -> None:
    if size > limits.max_decoded_bytes:
        raise DataError(f"{p}: the columns read hold {size} bytes once decoded, more than the {limits.max_decoded_bytes} "
                        "a dataset may have")


def _uncompressed_bytes(metadata: pq.FileMetaData, columns: list[str]) -> int:
    """What the file says the pages of ``columns`` hold before compression (dictionary pages included)."""
    total = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.path_in_schema.split(".")[0] in columns:
                total += chunk.total_uncompressed_size
    return total


def _is_bytes_like(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind))


def _decoded_bytes(column: pa.ChunkedArray) -> int:
    """Bytes ``column`` would take with every dictionary expanded (computed without expanding it)."""
    total = 0
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray) and _is_bytes_like(chunk.dictionary.type):
            lengths = pc.binary_length(chunk.dictionary)
            total += int(pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0) + 8 * len(chunk)
        else:
            total += chunk.nbytes
    return total
