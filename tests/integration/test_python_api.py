"""The one-call Python API (``mlac.audit(...)``, ``mlac.censor(...)``) and Ctrl-C on ``mlac-audit censor``: the
state is saved, the message says so and how to resume, and the same command resumes from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlac
from mlac.errors import ConfigError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlac.data import SynthConfig, generate_synthetic, save_dataset

    ds, task = generate_synthetic(SynthConfig(n_bios=400, seed=2))
    return save_dataset(ds, task, tmp_path_factory.mktemp("api-data") / "bios.parquet")


@pytest.mark.slow  # ~20 s on 2 busy cores
def test_mlac_audit_runs_the_smoke_preset_at_the_smallest_size(data: Path, tmp_path: Path) -> None:
    from mlac.data import load_saved_dataset
    from mlac.models import build_tiny_bert, save_checkpoint

    _, task = load_saved_dataset(data)
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=4)
    save_checkpoint(model, tok, tmp_path / "audited", beneficial_names=task.beneficial_names)
    result = mlac.audit(tmp_path / "audited", data=data, out=tmp_path / "audit", preset="smoke", sizes=[20],
                        seeds=[0], tasks=["harmful"], max_trials=1, reruns=1)
    assert {(c.model, c.task, int(c.n)) for c in result.curves} == {("audited", "harmful", 20)}
    assert result.verdict is not None and result.verdict.status in ("PASS", "FAIL", "INCONCLUSIVE")
    written = json.loads((tmp_path / "audit" / "result.json").read_text())
    assert written["verdict"]["status"] == result.verdict.status and (tmp_path / "audit" / "report.html").is_file()
    with pytest.raises(ConfigError, match="the overrides are"):
        mlac.audit(tmp_path / "audited", data=data, out=tmp_path / "audit2", size=[20])


def test_mlac_censor_trains_and_saves(data: Path, tmp_path: Path) -> None:
    steps: list[int] = []
    result = mlac.censor("tiny", data=data, out=tmp_path / "censored", base_steps=2, outer_steps=3, inner_steps=1,
                         max_length=32, val_every=3, checkpoint_every=3, outer_batch_size=4, inner_batch_sizes=(4,),
                         device="cpu", progress=lambda rec: steps.append(rec["step"]) if rec["event"] == "step" else None)
    assert steps == [1, 2, 3] and result.steps_done == 3
    assert result.weights_sha256 and (tmp_path / "censored" / "model.safetensors").is_file()
    assert (tmp_path / "censored" / "base" / "model.safetensors").is_file()  # the tiny base it started from
    with pytest.raises(ConfigError, match="MLACConfig fields"):
        mlac.censor("tiny", data=data, out=tmp_path / "other", steps=3)


@pytest.mark.slow  # 20-60 s on 2 busy cores: two censor runs in subprocesses
def test_ctrl_c_on_censor_saves_the_state_and_says_how_to_resume(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "censored"
    cmd = [sys.executable, "-m", "mlac.cli.main", "censor", "--base", "tiny", "--base-steps", "2", "--data",
           str(data), "--out", str(out), "--steps", "400", "--inner-steps", "1", "--val-every", "2",
           "--max-length", "32", "--outer-batch", "4", "--inner-batch-sizes", "4", "--device", "cpu",
           "--no-summary-attack"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    for line in proc.stderr:  # the validation lines are printed as they come, also without a terminal
        if line.startswith("validation @ 4"):
            break
        assert time.monotonic() < deadline, "no validation line"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Ctrl-C: stopping before the next step" in err
    stopped = next(line for line in err.splitlines() if line.startswith("stopped at step"))
    step = int(stopped.split()[3])
    assert step >= 4 and "the state is saved in" in stopped and "run the same command again to resume" in stopped
    assert (out / "mlac_resume").is_dir() and not (out / "model.safetensors").exists()

    finish = [*cmd[:cmd.index("--steps") + 1], str(step + 2), *cmd[cmd.index("--steps") + 2:]]
    done = subprocess.run(finish, capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert (summary["resumed_from"], summary["steps"]) == (step, step + 2)
