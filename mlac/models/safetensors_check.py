"""Structural validation of a ``.safetensors`` file without trusting it.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping tensor names to
``{dtype, shape, data_offsets}``, then one flat data region. Everything is checked before any tensor is
read: header length against a cap and against the file size, strict JSON (:mod:`mlac.strict_json`: no
NaN, bounded depth), ``__metadata__`` of strings, known dtypes, sizes and offsets that are integers (not
bools), offsets inside the data region, sizes consistent with dtype x shape, no overlaps, no gaps, no
trailing bytes. Last, the Rust loader itself (``safetensors.safe_open``, which reads only the header) must
accept the file, so that nothing passes here that loading would refuse. A pickle renamed ``.safetensors``
fails the first checks and is never unpickled.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from mlac.errors import CheckpointError
from mlac.limits import MODEL_LIMITS
from mlac.strict_json import StrictJsonError, loads_strict

#: Default cap on the JSON header (see :class:`mlac.limits.ModelLimits`).
MAX_HEADER_BYTES = MODEL_LIMITS.max_header_bytes

#: Bytes per element of each safetensors dtype.
DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as declared in the header (offsets relative to the data region)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _fail(code: str, path: Path, message: str) -> CheckpointError:
    return CheckpointError(f"{path.name}: {message}", code=code)


def read_header(path: Path, *, max_header_bytes: int = MAX_HEADER_BYTES) -> dict[str, TensorEntry]:
    """Parse and validate the header of ``path``; return its tensors by name.

    Raises :class:`CheckpointError` with codes ``missing_file``, ``not_safetensors``,
    ``header_too_large``, ``header_out_of_bounds``, ``bad_dtype``, ``bad_offsets``, ``trailing_bytes``.
    """
    if not path.is_file():
        raise _fail("missing_file", path, "file not found")
    size = path.stat().st_size
    if size < 8:
        raise _fail("not_safetensors", path, f"only {size} bytes: not a safetensors file")
    with path.open("rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > max_header_bytes:
            raise _fail(
                "header_too_large", path,
                f"declared header of {header_len} bytes exceeds the cap of {max_header_bytes} "
                "(a pickle or other file renamed .safetensors looks like this)",
            )
        if 8 + header_len > size:
            raise _fail(
                "header_out_of_bounds", path,
                f"declared header of {header_len} bytes runs past the end of the {size}-byte file",
            )
        raw = fh.read(header_len)
    try:
        header = loads_strict(raw)
    except StrictJsonError as exc:
        raise _fail("not_safetensors", path, f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _fail("not_safetensors", path, "header is not a JSON object")
    _check_metadata(header.pop("__metadata__", None), path)
    data_len = size - 8 - header_len
    entries = [_entry(name, spec, path) for name, spec in header.items()]
    _check_layout(entries, data_len, path)
    _rust_accepts(path)
    return {e.name: e for e in entries}


def _check_metadata(meta: Any, path: Path) -> None:
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise _fail("not_safetensors", path, "__metadata__ must be an object of string values")


def _is_size(value: Any) -> bool:
    """A non-negative integer; a bool is not one (Python's ``True == 1``, the Rust loader's usize refuses it)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rust_accepts(path: Path) -> None:
    """The safetensors library's own header check (it maps the file and parses the header; no tensor is read)."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except SafetensorError as exc:
        raise _fail("not_safetensors", path, f"the safetensors loader refuses the header ({str(exc)[:200]})") from None


def _entry(name: str, spec: object, path: Path) -> TensorEntry:
    if not isinstance(spec, dict):
        raise _fail("not_safetensors", path, f"tensor {name[:80]!r}: header entry is not an object")
    dtype = spec.get("dtype")
    shape = spec.get("shape")
    offsets = spec.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise _fail("bad_dtype", path, f"tensor {name[:80]!r}: unsupported dtype {dtype!r:.40}")
    if not isinstance(shape, list) or not all(_is_size(d) for d in shape):
        raise _fail("not_safetensors", path, f"tensor {name[:80]!r}: shape {shape!r:.60} is not a list of sizes")
    if (
        not isinstance(offsets, list) or len(offsets) != 2
        or not all(_is_size(o) for o in offsets) or offsets[0] > offsets[1]
    ):
        raise _fail("bad_offsets", path, f"tensor {name[:80]!r}: data_offsets {offsets!r:.60} are invalid")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected:
        raise _fail(
            "bad_offsets", path,
            f"tensor {name[:80]!r}: {offsets[1] - offsets[0]} bytes for {dtype} {str(shape)[:60]} (expected {expected})",
        )
    return TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(entries: list[TensorEntry], data_len: int, path: Path) -> None:
    cursor = 0
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.end > data_len:
            raise _fail("bad_offsets", path, f"tensor {e.name[:80]!r} ends at {e.end}, past the data region ({data_len})")
        if e.begin < cursor:
            raise _fail("bad_offsets", path, f"tensor {e.name[:80]!r} overlaps the previous tensor")
        if e.begin > cursor:
            raise _fail("bad_offsets", path, f"gap of {e.begin - cursor} bytes before tensor {e.name[:80]!r}")
        cursor = e.end
    if cursor != data_len:
        raise _fail("trailing_bytes", path, f"{data_len - cursor} bytes after the last tensor")
