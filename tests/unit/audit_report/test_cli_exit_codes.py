"""``mlac-audit audit`` exits with its verdict (0 PASS, 1 FAIL, 3 INCONCLUSIVE; 0 for all with --exit-zero),
prints the verdict line last, and its closing table shows the t-interval, "insufficient" and "attack failed"."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mlac.audit.curves import build_curves
from mlac.audit.result_schema import AuditResult
from mlac.audit.verdict import Verdict
from mlac.cli.audit_cmd import VERDICT_EXIT_CODES, curve_table, exit_code
from mlac.cli.main import build_parser, main


def test_exit_code_mapping() -> None:
    assert exit_code("PASS") == 0 and exit_code("FAIL") == 1 and exit_code("INCONCLUSIVE") == 3
    assert exit_code(None) == 3 and exit_code("SOMETHING NEW") == 3  # never 0 for what did not pass
    assert all(exit_code(s, exit_zero=True) == 0 for s in ("PASS", "FAIL", "INCONCLUSIVE", None))
    assert 2 not in VERDICT_EXIT_CODES.values()  # 2 stays argparse's / MlacError's usage error


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["audit", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--exit-zero" in out and "INCONCLUSIVE  3" in out and "FAIL          1" in out and "PASS          0" in out


@pytest.mark.parametrize(("status", "flags", "code"), [
    ("PASS", [], 0), ("FAIL", [], 1), ("INCONCLUSIVE", [], 3), ("FAIL", ["--exit-zero"], 0),
    ("INCONCLUSIVE", ["--exit-zero"], 0),
])
def test_audit_command_exits_with_its_verdict(make_result, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], status: str, flags: list[str],
                                              code: int) -> None:
    """The real ``main(["audit", ...])`` path, with the search replaced by a finished result of that verdict."""
    import mlac.audit.runner as runner

    made = make_result()
    finished = AuditResult(request=made.request, curves=made.curves, seed_points=made.seed_points,
                           derived=made.derived, verdict=Verdict(status, [], {}))

    def fake_run_audit(request: Any, out: Any, **_: Any) -> AuditResult:
        return finished

    monkeypatch.setattr(runner, "run_audit", fake_run_audit)
    data = tmp_path / "bios.parquet"
    data.write_bytes(b"")  # the request only checks that the file exists; the search never reads it here
    rc = main(["audit", "--data", str(data), "--base", "tiny", "--baselines", "random,base", "--preset", "smoke",
               "--out", str(tmp_path / "out"), "--quiet", *flags])
    out = capsys.readouterr().out
    assert rc == code
    assert out.strip().splitlines()[-1].startswith(f"verdict: {status}") and out.rstrip().endswith(f"-> exit {code}")


def _render(table: Any) -> str:
    console = Console(record=True, width=250, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_curve_table_shows_t_interval_insufficient_chance_and_attack_failed(make_result) -> None:
    made = make_result(censored=(0.49, 0.80))
    chance = {"harmful": 0.5, "beneficial": 0.2}
    points = [replace(p, majority_rate=chance[p.task]) for p in made.seed_points
              if not (p.model == "base" and p.seed == 1)]  # base: one seed
    curves = build_curves(points)
    text = _render(curve_table(curves))
    rows = [[cell.strip() for cell in line.split("│")] for line in text.splitlines() if line.count("│") > 3]
    lines = {(cells[1], cells[2]): " ".join(cells) for cells in rows}
    censored = lines[("censored", "harmful")]
    c20 = next(c for c in curves if (c.model, c.task, c.n) == ("censored", "harmful", 20))
    assert c20.attack_failed and c20.interval is not None
    assert f"{c20.mean:.3f} [{c20.interval[0]:.2f}, {c20.interval[1]:.2f}] attack failed" in censored
    assert censored.count("attack failed") == 1 and "0.500" in censored  # n=100 is above chance; the chance rate
    assert lines[("base", "harmful")].count("[insufficient: 1 seed]") == 2
    assert "0.200" in lines[("random", "beneficial")]
    bare = [replace(p, majority_rate=None) for p in made.seed_points]  # no chance recorded (schema 1.0)
    old = _render(curve_table(build_curves(bare)))
    assert "attack failed" not in old.replace("attack failed = at or below", "")
    assert all(cells[3] == "-" for cells in ([c.strip() for c in line.split("│")]
                                            for line in old.splitlines() if line.count("│") > 3))
