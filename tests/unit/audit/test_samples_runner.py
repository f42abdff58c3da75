"""``samples.csv`` through the runner: one row per (study, rerun, report example), each rerun's mean of ``correct``
is its report accuracy, the result JSON is unchanged when the option is off, and resume reuses or fills in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from mlac.audit.overrides import AuditOverrides, build_audit_request
from mlac.audit.protocol import audit_id
from mlac.audit.runner import run_audit
from mlac.audit.samples import SAMPLE_COLUMNS, SAMPLES_FILE, SUMMARY_COLUMNS, SUMMARY_FILE
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.trial import TrialSpec, WorkerContext

REPORT_ROWS, RERUNS, SEEDS = 60, 2, (0, 1)


def _request(dataset: Path, ckpt: Path, log_samples: bool) -> Any:
    overrides = AuditOverrides(tasks=("harmful",), sizes=(20,), seeds=SEEDS, max_trials=2, reruns=RERUNS,
                               selection_max=80, report_max=REPORT_ROWS, log_samples=log_samples)
    return build_audit_request("smoke", dataset=str(dataset), models=(str(ckpt),), overrides=overrides)


def _without_timings(obj: Any, out_dir: Path) -> Any:
    if isinstance(obj, dict):
        return {k: _without_timings(v, out_dir) for k, v in obj.items()
                if "wall" not in k and k not in ("timings", "created_at")}
    if isinstance(obj, list):
        return [_without_timings(v, out_dir) for v in obj]
    return obj.replace(str(out_dir.resolve()), "<OUT>") if isinstance(obj, str) else obj


def _report_ids(dataset: Path, ckpt: Path) -> list[str]:
    ctx = WorkerContext()
    spec = TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=20, subset_seed=0, params={},
                     trial_seed=0, report_max=REPORT_ROWS)
    return list(ctx.encoded(spec, ctx.model(str(ckpt), torch.device("cpu")), "report")[1])


def test_samples_csv_with_the_option_and_none_without(tmp_path: Path, audit_dataset: Path, tiny_checkpoint: Path) -> None:
    torch.set_num_threads(1)
    on, off = _request(audit_dataset, tiny_checkpoint, True), _request(audit_dataset, tiny_checkpoint, False)
    assert audit_id(on, {}, "fp") == audit_id(off, {}, "fp")  # an output option: the same audit
    result = run_audit(on, tmp_path / "on")
    samples = pd.read_csv(tmp_path / "on" / SAMPLES_FILE)
    assert tuple(samples.columns) == SAMPLE_COLUMNS
    assert len(samples) == len(SEEDS) * RERUNS * REPORT_ROWS
    assert set(samples["correct"]) <= {0, 1} and set(samples["true_label"]) <= {"female", "male"}
    assert samples["text"].str.len().max() <= 80 and samples["text"].str.len().min() > 0
    for point in result.seed_points:
        mine = samples[samples["seed"] == point.seed]
        per_rerun = [float(mine[mine["rerun"] == r]["correct"].mean()) for r in range(RERUNS)]
        assert per_rerun == point.rerun_accuracies  # exactly: the same predictions scored
        ids = list(mine[mine["rerun"] == 0]["example_id"].astype(str))
        assert ids == _report_ids(audit_dataset, tiny_checkpoint)  # the report split's own row order
    summary = pd.read_csv(tmp_path / "on" / SUMMARY_FILE)
    assert tuple(summary.columns) == SUMMARY_COLUMNS and len(summary) == REPORT_ROWS
    assert set(summary["runs"]) == {len(SEEDS) * RERUNS}
    by_example = samples.groupby(samples["example_id"].astype(str))["correct"].mean()
    assert dict(zip(summary["example_id"].astype(str), summary["accuracy"], strict=True)) == pytest.approx(by_example.to_dict())

    run_audit(off, tmp_path / "off")
    assert not (tmp_path / "off" / SAMPLES_FILE).exists() and not (tmp_path / "off" / SUMMARY_FILE).exists()
    a = json.loads((tmp_path / "on" / "result.json").read_text())
    b = json.loads((tmp_path / "off" / "result.json").read_text())
    assert "log_samples" not in b["request"] and a["request"].pop("log_samples") is True
    assert _without_timings(a, tmp_path / "on") == _without_timings(b, tmp_path / "off")

    # resumed with the option: nothing runs again and the file is the same
    before = (tmp_path / "on" / SAMPLES_FILE).read_bytes()
    again = InProcessExecutor(WorkerContext())
    run_audit(on, tmp_path / "on", executor=again)
    assert again.executed == 0 and (tmp_path / "on" / SAMPLES_FILE).read_bytes() == before

    # an audit first run without it, resumed with it: only the reruns run (for their predictions), same points
    fill = InProcessExecutor(WorkerContext())
    filled = run_audit(on, tmp_path / "off", executor=fill)
    assert fill.executed == len(SEEDS) * RERUNS
    assert [p.rerun_accuracies for p in filled.seed_points] == [p.rerun_accuracies for p in result.seed_points]
    assert len(pd.read_csv(tmp_path / "off" / SAMPLES_FILE)) == len(samples)

    # and run without it again: the sample files of the former run go (they would not describe this one)
    run_audit(off, tmp_path / "off")
    assert not (tmp_path / "off" / SAMPLES_FILE).exists()
