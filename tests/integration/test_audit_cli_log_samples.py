"""``mlac-audit audit --log-samples`` through the console script: ``samples.csv`` has one row per (seed, rerun,
report example) with the flag, and no sample file is written without it. Tiny: one model, one task, n = 20, one
seed, one trial, two reruns (~20 s a run on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}


def _audit(data: Path, model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlac.cli.main", "audit", "--model", str(model), "--data", str(data),
                           "--preset", "smoke", "--tasks", "harmful", "--sizes", "20", "--seeds", "0", "--max-trials", "1",
                           "--reruns", "2", "--out", str(out), "--quiet", "--exit-zero", *extra],
                          capture_output=True, text=True, env=ENV, timeout=300, check=False)


def test_log_samples_flag_writes_samples_csv(tmp_path: Path) -> None:
    from mlac.audit.trial import capped_split
    from mlac.data import SynthConfig, generate_synthetic, make_splits, save_dataset
    from mlac.models import build_tiny_bert, save_checkpoint

    ds, task = generate_synthetic(SynthConfig(n_bios=600, seed=2))
    data = save_dataset(ds, task, tmp_path / "bios.parquet")
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=1)
    save_checkpoint(model, tok, tmp_path / "audited", beneficial_names=task.beneficial_names)
    report_rows = len(capped_split(make_splits(ds, 0).report, 300, 0))  # the smoke preset's report_max

    run = _audit(data, tmp_path / "audited", tmp_path / "on", "--log-samples")
    assert run.returncode == 0, run.stderr[-3000:]
    samples = pd.read_csv(tmp_path / "on" / "samples.csv")
    assert len(samples) == 2 * report_rows and set(samples["rerun"]) == {0, 1}
    assert set(samples["model"]) == {"audited"} and set(samples["task"]) == {"harmful"}
    point = json.loads((tmp_path / "on" / "result.json").read_text())["seed_points"][0]
    assert [float(samples[samples["rerun"] == r]["correct"].mean()) for r in (0, 1)] == point["rerun_accuracies"]
    assert len(pd.read_csv(tmp_path / "on" / "samples_summary.csv")) == report_rows

    run = _audit(data, tmp_path / "audited", tmp_path / "off")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "off" / "result.json").is_file()
    assert not (tmp_path / "off" / "samples.csv").exists() and not (tmp_path / "off" / "samples_summary.csv").exists()
