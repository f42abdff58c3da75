"""Datasets on disk (parquet + task.json) and the `mlac-audit data` commands (no tracebacks)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from mlac.cli.main import main
from mlac.data import dataset_fingerprint, load_saved_dataset, make_splits, save_dataset
from mlac.errors import DataError
from mlac.tasks import TaskSpec


def test_save_and_load_round_trip(tmp_path: Path, synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, task = synth_1k
    path = save_dataset(ds, task, tmp_path / "d.parquet")
    back, task2 = load_saved_dataset(path)
    assert task2 == task and dataset_fingerprint(back) == dataset_fingerprint(ds)
    assert json.loads((tmp_path / "d.task.json").read_text())["harmful_names"] == ["female", "male"]


def test_save_writes_only_the_selected_rows(tmp_path: Path, synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, task = synth_1k
    report = make_splits(ds, seed=0).report
    back, _ = load_saved_dataset(save_dataset(report, task, tmp_path / "r.parquet"))
    assert len(back) == len(report) and back["id"] == report["id"]


def test_load_saved_errors(tmp_path: Path, synth_1k: tuple[Dataset, TaskSpec]) -> None:
    ds, task = synth_1k
    with pytest.raises(DataError, match="not found"):
        load_saved_dataset(tmp_path / "none.parquet")
    path = save_dataset(ds.remove_columns("gender"), task, tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"missing column\(s\) \['gender'\]; the file has"):
        load_saved_dataset(path)
    (tmp_path / "x.task.json").unlink()
    with pytest.raises(DataError, match=r"missing its task file x\.task\.json"):
        load_saved_dataset(path)
    bad = ds.select(range(3)).map(lambda r: {"profession": 99})
    path = save_dataset(bad, task, tmp_path / "y.parquet")
    with pytest.raises(DataError, match=r"label\(s\) \[99\] outside 0..11"):
        load_saved_dataset(path)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_synth_info_convert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.parquet"
    code, stdout, _ = _cli(capsys, "data", "synth", "--n", "120", "--seed", "3", "--gender-cue-strength", "0.5", "--out", str(out))
    assert code == 0 and "120 rows" in stdout and "female" in stdout and "fingerprint" in stdout
    ds, task = load_saved_dataset(out)
    assert len(ds) == 120 and len(task.beneficial_names) == 12
    code, info, _ = _cli(capsys, "data", "info", str(out))
    assert code == 0 and f"fingerprint {dataset_fingerprint(ds)}" in info

    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps([{"raw": "Al Bo is a poet. He writes.", "title": "poet", "gender": "M"}]))
    code, stdout, _ = _cli(capsys, "data", "convert", "--bios-pkl", str(pkl), "--trust-pickle", "--out", str(tmp_path / "b.parquet"))
    assert code == 0 and "1 rows" in stdout
    assert load_saved_dataset(tmp_path / "b.parquet")[0]["text"] == ["They writes."]
    pub = tmp_path / "pub.parquet"
    pq.write_table(pa.Table.from_pydict({"hard_text": ["She sings."], "profession": [5], "gender": [1]}), str(pub))
    code, stdout, _ = _cli(capsys, "data", "convert", str(pub), "--out", str(tmp_path / "p.parquet"))
    assert code == 0 and "female 100.0%" in stdout


def test_cli_errors_have_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "data", "info", str(tmp_path / "missing.parquet"))
    assert code == 2 and "not found" in err and "Traceback" not in err
    pkl = tmp_path / "BIOS.pkl"
    pkl.write_bytes(pickle.dumps([{"raw": "x", "title": "y", "gender": "F"}]))
    code, _, err = _cli(capsys, "data", "convert", "--bios-pkl", str(pkl), "--out", str(tmp_path / "o.parquet"))
    assert code == 2 and "--trust-pickle" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "data", "synth", "--n", "10", "--gender-cue-strength", "2", "--out", str(tmp_path / "z.parquet"))
    assert code == 2 and "gender_cue_strength must be in [0, 1]" in err
    code, _, err = _cli(capsys, "data", "convert", "--out", str(tmp_path / "o.parquet"))
    assert code == 2 and "exactly one source" in err
