"""CSV export: every curve, seed point and trial of a result, values that read back exactly."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mlac.audit.curves import SeedPoint, build_curves
from mlac.audit.export import to_csv, write_csvs
from mlac.audit.result_schema import AuditResult
from mlac.cli.main import main
from mlac.errors import ConfigError


def _result() -> AuditResult:
    points = [SeedPoint("m", task, n, s, 0.5 + 0.1 * s + n / 1000, 0.6, rerun_accuracies=[0.5, 0.7],
                        best_params={"lr": 1e-3, "kind": "probe"}, trials_run=2, attacker_flops=1e9,
                        trial_history=[{"trial": t, "wall_s_cum": 0.1 * t, "flops_cum": 1e9 * t,
                                        "best_report_acc_so_far": None if t == 1 else 0.5,
                                        "best_selection_acc_so_far": 0.4} for t in (2, 1)])
              for task in ("harmful", "beneficial") for n in (20, 100) for s in (0, 1, 2)]
    return AuditResult(request={}, curves=build_curves(points, n_resamples=20), seed_points=points)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_every_table_has_one_row_per_record_and_exact_values() -> None:
    result = _result()
    curves = _rows(to_csv(result, "curves"))
    assert len(curves) == len(result.curves) == 4
    first = result.curves[0]
    assert float(curves[0]["mean"]) == first.mean and float(curves[0]["ci_t_lo"]) == first.ci_t[0]  # type: ignore[index]
    seeds = _rows(to_csv(result, "seed_points"))
    assert len(seeds) == 12
    assert json.loads(seeds[0]["best_params"]) == {"kind": "probe", "lr": 1e-3}
    assert [float(r["report_accuracy"]) for r in seeds] == [p.report_accuracy for p in result.seed_points]
    trials = _rows(to_csv(result, "trials"))
    assert len(trials) == 24 and [r["trial"] for r in trials[:2]] == ["1", "2"]  # sorted by trial
    assert trials[0]["best_report_acc_so_far"] == ""  # missing, not "None"


def test_unknown_table_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="choose from curves, seed_points, trials"):
        to_csv(_result(), "nope")
    _result().write(tmp_path / "result.json")
    assert main(["export", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["curves.csv", "seed_points.csv", "trials.csv"]
    capsys.readouterr()
    assert main(["export", str(tmp_path), "--table", "seed_points"]) == 0
    assert capsys.readouterr().out == (tmp_path / "seed_points.csv").read_text()
    assert write_csvs(_result(), tmp_path / "x", ["curves"])["curves"].is_file()
