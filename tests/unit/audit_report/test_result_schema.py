"""The versioned result JSON: round trip, version check, validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mlac.audit.result_schema import SCHEMA_VERSION, AuditResult, plain
from mlac.audit.verdict import VerdictPolicy
from mlac.errors import DataError


def test_round_trip_is_exact(make_result, tmp_path: Path) -> None:
    result = make_result(policy=VerdictPolicy(0.04, 0.06, "ci", 2.0))
    text = result.to_json()
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION == "1.1"
    back = AuditResult.from_json(text)
    assert back.to_json() == text
    assert back.policy == result.policy and back.verdict == result.verdict and back.curves == result.curves
    assert back.seed_points == result.seed_points
    path = result.write(tmp_path / "result.json")
    assert AuditResult.read(path).to_json() == text


def test_result_is_frozen(make_result) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_result().request = {}


@pytest.mark.parametrize("version", ["9.9", "0.1", None, 1.0])
def test_unknown_schema_version_is_a_clear_error(make_result, version) -> None:
    data = json.loads(make_result().to_json())
    data["schema_version"] = version
    with pytest.raises(DataError, match=r"schema version .* not supported: this mlac-audit reads 1\.0"):
        AuditResult.from_dict(data)


@pytest.mark.parametrize(("path", "value", "match"), [
    (("curves",), "nope", "'curves' must be a list"),
    (("curves", 0, "mean"), None, "CurvePoint"),
    (("curves", 0, "ci_t"), [0.1], r"\[lo, hi\]"),
    (("seed_points", 0, "n"), "twenty", "SeedPoint"),
    (("request",), None, "'request' must be an object"),
    (("policy", "delta_random"), 3, "delta_random"),
    (("verdict", "status"), "MAYBE", "verdict status"),
])
def test_malformed_records_are_clear_errors(make_result, path, value, match) -> None:
    data = json.loads(make_result().to_json())
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(DataError, match=match):
        AuditResult.from_dict(data)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no audit result"):
        AuditResult.read(tmp_path / "missing.json")
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(DataError, match="valid JSON"):
        AuditResult.read(tmp_path / "r.json")
    with pytest.raises(DataError, match="JSON object"):
        AuditResult.from_json("[1, 2]")


def test_plain_values() -> None:
    assert plain({"a": (1, 2.5), "b": Path("/x"), "c": np.float32(0.5), "d": float("nan"), 3: [np.int64(4)]}) == {
        "a": [1, 2.5], "b": "/x", "c": 0.5, "d": None, "3": [4]}
    with pytest.raises(DataError, match="cannot store"):
        plain({"x": object()})
