"""User dataset files: labels within small ranges and never truncated; hostile files are a DataError, not a crash."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlac.data import load_dataset_file
from mlac.errors import DataError
from mlac.limits import DATASET_LIMITS, DatasetLimits

COLUMNS = ("job", "sex")


def _rows(n: int = 6, **last: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"bio": f"Sam is a cook. He cooks {i}.", "job": i % 3, "sex": i % 2} for i in range(n)]
    rows[-1].update(last)
    return rows


def _jsonl(tmp_path: Path, rows: list[Any], name: str = "u.jsonl") -> Path:
    f = tmp_path / name
    f.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return f


def _load(path: Path, **kw: Any):
    return load_dataset_file(path, "bio", COLUMNS, **kw)


@pytest.mark.parametrize(("last", "match"), [
    ({"job": 1_000_000}, r"0\.\.999"),         # was accepted: a million label names in the response
    ({"job": DATASET_LIMITS.max_beneficial_classes}, r"0\.\.999"),
    ({"sex": 2}, r"0 or 1"),                    # harmful is binary
    ({"job": 1.7}, "integer"),                  # was silently truncated to 1
    ({"sex": True}, "integer"),
    ({"job": "2"}, "integer"),
    ({"job": None}, "integer"),
    ({"job": -1}, "non-negative|0\\.\\.999"),
])
def test_labels_must_be_small_integers(tmp_path: Path, last: dict[str, Any], match: str) -> None:
    with pytest.raises(DataError, match=match):
        _load(_jsonl(tmp_path, _rows(**last)))


def test_whole_number_floats_are_labels_and_the_largest_class_count_is_admitted(tmp_path: Path) -> None:
    rows = _rows(job=float(DATASET_LIMITS.max_beneficial_classes - 1), sex=1.0)
    ds, task = _load(_jsonl(tmp_path, rows))
    assert ds["profession"][-1] == DATASET_LIMITS.max_beneficial_classes - 1 and ds["gender"][-1] == 1
    assert task.num_labels("beneficial") == DATASET_LIMITS.max_beneficial_classes and task.num_labels("harmful") == 2


@pytest.mark.parametrize(("name", "content"), [
    ("scalars.jsonl", b"5\n6\n"),                                         # was TypeError
    ("scalars.json", b"[1, 2, 3]"),                                       # was TypeError
    ("lists.json", b"[[1], [2]]"),                                        # was AttributeError
    ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000),                      # was RecursionError
    ("bigint.jsonl", b'{"bio": "x", "job": ' + b"1" * 5000 + b', "sex": 0}'),   # was ValueError
    ("inf.jsonl", b'{"bio": "x", "job": Infinity, "sex": 0}'),            # was OverflowError
    ("nan.jsonl", b'{"bio": "x", "job": NaN, "sex": 0}'),
    ("mixed.jsonl", b'{"bio": "a", "job": 0, "sex": 0}\n{"bio": "b", "job": "x", "sex": 1}'),  # was ArrowInvalid
    ("dicttext.jsonl", b'{"bio": {"a": 1}, "job": 0, "sex": 0}\n{"bio": "b", "job": 1, "sex": 1}'),  # ArrowTypeError
    ("empty.jsonl", b""),
    ("nonutf8.jsonl", b"\xff\xfe\x00bad"),
    ("garbage.parquet", b"PAR1garbagePAR1"),
    ("partial_column.jsonl", b'{"bio": "a", "job": 0, "sex": 0}\n{"bio": "b", "job": 1}'),
])
def test_hostile_files_are_data_errors(tmp_path: Path, name: str, content: bytes) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(DataError):
        _load(f)


def _parquet(tmp_path: Path, table: pa.Table) -> Path:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    f = tmp_path / "u.parquet"
    f.write_bytes(buf.getvalue())
    return f


@pytest.mark.parametrize("text", [pa.array([[1, 2]] * 6), pa.array([b"\xff"] * 6, pa.binary())])
def test_parquet_text_must_be_strings(tmp_path: Path, text: pa.Array) -> None:
    f = _parquet(tmp_path, pa.table({"bio": text, "job": [0, 1, 2] * 2, "sex": [0, 1] * 3}))
    with pytest.raises(DataError, match="string"):
        _load(f)


def test_a_small_parquet_that_expands_past_the_limits_is_refused_unread(tmp_path: Path) -> None:
    n = 50_000  # dictionary-encoded and compressed: a few kB on disk, 10 MB of text once decoded
    text = pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array(["x" * 200]))
    f = _parquet(tmp_path, pa.table({"bio": text, "job": pa.array([0, 1] * (n // 2), pa.int8()), "sex": [0, 1] * (n // 2)}))
    assert f.stat().st_size < 50_000
    with pytest.raises(DataError, match="rows"):
        _load(f, limits=DatasetLimits(max_rows=10_000))
    with pytest.raises(DataError, match="bytes"):
        _load(f, limits=DatasetLimits(max_decoded_bytes=1_000_000))
    assert len(_load(f)[0]) == n
