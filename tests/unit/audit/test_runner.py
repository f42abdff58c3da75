"""Whole searches through the runner: determinism of the seed points, resume of a finished audit, baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mlac.audit.presets import build_request
from mlac.audit.runner import STUDIES_FILE, execute_audit
from mlac.audit.search import InProcessExecutor

TIMING_KEYS = {"attacker_wall_s", "wall_s_cum"}


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def test_same_request_same_points_and_resume(tmp_path: Path, audit_dataset: Path, tiny_checkpoint: Path) -> None:
    torch.set_num_threads(1)
    req = build_request("smoke", dataset=str(audit_dataset), models=(str(tiny_checkpoint),), base=str(tiny_checkpoint),
                        baselines=("random",), tasks=("harmful",), sizes=(20,), seeds=(0, 1))
    events: list[dict[str, Any]] = []
    execute_audit(req, tmp_path / "a", progress=events.append)
    execute_audit(req, tmp_path / "b")
    a = json.loads((tmp_path / "a" / STUDIES_FILE).read_text())
    b = json.loads((tmp_path / "b" / STUDIES_FILE).read_text())
    assert len(a) == 2 * 1 * 1 * 2
    assert _strip(a) == _strip(b)
    assert {r["model"] for r in a} == {"tiny", "random"}
    assert all(len(r["rerun_accuracies"]) == 2 and 1 <= r["trials_run"] <= 4 for r in a)
    stages = [e["stage"] for e in events]
    assert stages[0] == "prepare" and "baselines" in stages and stages[-1] == "search"
    last = events[-1]
    assert last["studies_done"] == last["studies_total"] == 4 and last["trials_done"] >= 4
    # Running the same audit into the same folder resumes: the baseline is reused and no trial runs again.
    ex = InProcessExecutor()
    recipe = (tmp_path / "a" / "baselines" / "random" / "recipe.json").stat().st_mtime_ns
    _, results = execute_audit(req, tmp_path / "a", executor=ex)
    assert ex.executed == 0
    assert (tmp_path / "a" / "baselines" / "random" / "recipe.json").stat().st_mtime_ns == recipe
    assert _strip([r for r in json.loads((tmp_path / "a" / STUDIES_FILE).read_text())]) == _strip(a)
    assert len(results) == 4
