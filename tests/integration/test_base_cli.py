"""``mlac-audit base``: trains the tiny BERT base on a dataset and saves a checkpoint that loads back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlac.cli.main import main


def test_base_command_writes_a_loadable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlac.data import SynthConfig, generate_synthetic, save_dataset
    from mlac.models import load_checkpoint

    ds, task = generate_synthetic(SynthConfig(n_bios=300, seed=3))
    data = save_dataset(ds, task, tmp_path / "bios.parquet")
    rc = main(["base", "--data", str(data), "--out", str(tmp_path / "base"), "--steps", "3", "--max-length", "32",
               "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    summary = json.loads(out[out.index("{"):])
    loaded = load_checkpoint(tmp_path / "base", num_beneficial=len(task.beneficial_names))
    assert loaded.sha256 == summary["weights_sha256"]
    provenance = json.loads((tmp_path / "base" / "provenance.json").read_text())
    assert (provenance["kind"], provenance["steps"], provenance["weights_sha256"]) == ("tiny_base", 3, loaded.sha256)


def test_base_command_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["base", "--data", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error [") and "missing.parquet" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()
