"""Ctrl-C on ``mlac-audit audit``: the audit stops between trials, says what it kept (finished trials in the
folder's Optuna storage) and how to resume, exits 130; the same command then finishes, reusing those trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlac.cli import audit_cmd
from mlac.cli.main import StopOnInterrupt, main


class StopAtSecondPoll(StopOnInterrupt):
    """A Ctrl-C that arrives after the first poll (the real signal handling is tested in tests/unit)."""

    polls = 0

    def __call__(self) -> bool:
        StopAtSecondPoll.polls += 1
        return StopAtSecondPoll.polls >= 2


@pytest.mark.slow  # two smoke audits at the smallest size, ~40 s on 2 busy cores
def test_ctrl_c_on_audit_says_what_was_kept_and_the_rerun_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from mlac.data import SynthConfig, generate_synthetic, save_dataset
    from mlac.models import build_tiny_bert, save_checkpoint

    ds, task = generate_synthetic(SynthConfig(n_bios=400, seed=1))
    data = save_dataset(ds, task, tmp_path / "bios.parquet")
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=5)
    save_checkpoint(model, tok, tmp_path / "audited", beneficial_names=task.beneficial_names)
    out = tmp_path / "audit"
    argv = ["audit", "--model", str(tmp_path / "audited"), "--data", str(data), "--out", str(out), "--preset", "smoke",
            "--sizes", "20", "--seeds", "0,1", "--tasks", "harmful", "--max-trials", "2", "--reruns", "1", "--quiet"]

    monkeypatch.setattr(audit_cmd, "StopOnInterrupt", StopAtSecondPoll)
    assert main(argv) == 130
    err = capsys.readouterr().err
    stopped = next(line for line in err.splitlines() if line.startswith("audit stopped: "))
    assert f"sqlite:///{out / 'optuna.db'}" in stopped and "run the same command again" in stopped
    assert (out / "optuna.db").is_file() and not (out / "result.json").exists()

    monkeypatch.setattr(audit_cmd, "StopOnInterrupt", StopOnInterrupt)
    code = main(argv)
    assert (out / "result.json").is_file()
    status = json.loads((out / "result.json").read_text())["verdict"]["status"]
    assert code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[status]
