"""Whole audits through the runner: result JSON determinism, resume after an interruption, studies run
several at a time give the same points as one at a time, baselines reused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from mlac.audit.presets import build_request
from mlac.audit.runner import STUDIES_FILE, execute_audit, run_audit
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.trial import WorkerContext
from mlac.errors import StoppedError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _strip(obj: Any, out_dir: Path) -> Any:
    """Drop timings (any key naming wall time, and when the result was made) and the output folder's own path."""
    if isinstance(obj, dict):
        return {k: _strip(v, out_dir) for k, v in obj.items() if "wall" not in k and k not in ("timings", "created_at")}
    if isinstance(obj, list):
        return [_strip(v, out_dir) for v in obj]
    if isinstance(obj, str):
        return obj.replace(str(out_dir.resolve()), "<OUT>")
    return obj


class Wide(InProcessExecutor):
    """In-process executor that claims to run ``concurrency`` trials at once; records batch sizes."""

    def __init__(self, concurrency: int, context: WorkerContext, stop_after: int | None = None) -> None:
        super().__init__(context)
        self.concurrency = concurrency
        self.stop_after = stop_after
        self.batches: list[int] = []

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(len(specs))
        return super().map(specs)

    def should_stop(self) -> bool:
        return self.stop_after is not None and self.executed >= self.stop_after


@pytest.fixture(scope="module")
def request_(audit_dataset: Path, tiny_checkpoint: Path) -> Any:
    return build_request("smoke", dataset=str(audit_dataset), models=(str(tiny_checkpoint),), base=str(tiny_checkpoint),
                         baselines=("random",), tasks=("harmful",), sizes=(20,), seeds=(0, 1), selection_max=120,
                         report_max=120, verdict={"delta_random": 0.2, "statistic": "ci"})


def test_same_request_same_result_json(tmp_path: Path, request_: Any) -> None:
    torch.set_num_threads(1)
    events: list[dict[str, Any]] = []
    result = run_audit(request_, tmp_path / "a", progress=events.append)
    run_audit(request_, tmp_path / "b")
    a = json.loads((tmp_path / "a" / "result.json").read_text())
    b = json.loads((tmp_path / "b" / "result.json").read_text())
    assert _strip(a, tmp_path / "a") == _strip(b, tmp_path / "b")
    assert a["schema_version"] == result.schema_version
    assert a["policy"]["delta_random"] == 0.2 and a["policy"]["statistic"] == "ci"  # the request's verdict policy
    assert {c["model"] for c in a["curves"]} == {"tiny", "random"}
    assert len(a["seed_points"]) == 2 * 1 * 1 * 2
    assert all(len(p["rerun_accuracies"]) == 2 and 1 <= p["trials_run"] <= 4 for p in a["seed_points"])
    assert a["provenance"]["checkpoints"]["random"]["sha256"] != a["provenance"]["checkpoints"]["tiny"]["sha256"]
    for name in ("curves.png", "attack_budget.png"):
        assert (tmp_path / "a" / name).read_bytes()[:8] == PNG_MAGIC
    stages = [e["stage"] for e in events]
    assert stages[0] == "prepare" and "baselines" in stages and "search" in stages and stages[-1] == "done"
    last_search = [e for e in events if e["stage"] == "search"][-1]
    assert last_search["studies_done"] == last_search["studies_total"] == 4
    assert last_search["trials_done"] >= 4 and "best_so_far" in last_search
    etas = [e.get("eta_s") for e in events if e["stage"] == "search"]
    assert any(isinstance(x, float) and x > 0 for x in etas) and etas[-1] == 0.0  # the runner's own ETA, 0 at the end


def test_batched_trials_give_the_same_result_json(tmp_path: Path, request_: Any, trained_groups: list[int]) -> None:
    torch.set_num_threads(1)
    groups = trained_groups
    run_audit(request_, tmp_path / "serial", executor=InProcessExecutor(batched=False))
    assert groups == []  # negative control: batching off trains no group
    run_audit(request_, tmp_path / "batched", executor=InProcessExecutor())
    assert groups and max(groups) >= 4  # the four studies' trials trained together
    a = json.loads((tmp_path / "serial" / "result.json").read_text())
    b = json.loads((tmp_path / "batched" / "result.json").read_text())
    assert _strip(a, tmp_path / "serial") == _strip(b, tmp_path / "batched")


def test_interrupted_audit_resumes_and_width_does_not_change_points(tmp_path: Path, request_: Any) -> None:
    torch.set_num_threads(1)
    ctx = WorkerContext()  # shared: probe features are computed once for all four runs
    sequential = Wide(concurrency=1, context=ctx)
    execute_audit(request_, tmp_path / "seq", executor=sequential)
    expected = json.loads((tmp_path / "seq" / STUDIES_FILE).read_text())
    assert max(sequential.batches) == request_.search.reruns  # one study at a time: trials one by one, then reruns

    # Four studies in flight: batches of up to four trials, then a stop after six trial runs.
    first = Wide(concurrency=4, context=ctx, stop_after=6)
    with pytest.raises(StoppedError):
        execute_audit(request_, tmp_path / "par", executor=first, should_stop=first.should_stop)
    assert max(first.batches) > request_.search.reruns and 6 <= first.executed < sequential.executed
    recipe = (tmp_path / "par" / "baselines" / "random" / "recipe.json").stat().st_mtime_ns

    second = Wide(concurrency=4, context=ctx)
    execute_audit(request_, tmp_path / "par", executor=second)
    # Finished trials were reused: together the two runs executed exactly what one run needs.
    assert first.executed + second.executed == sequential.executed
    assert _strip(json.loads((tmp_path / "par" / STUDIES_FILE).read_text()), tmp_path) == _strip(expected, tmp_path)
    assert (tmp_path / "par" / "baselines" / "random" / "recipe.json").stat().st_mtime_ns == recipe

    third = Wide(concurrency=4, context=ctx)
    execute_audit(request_, tmp_path / "par", executor=third)
    assert third.executed == 0
