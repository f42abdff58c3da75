"""The whole ``smoke`` audit through the console script (a subprocess), then ``report DIR``.

Builds a dataset and a checkpoint to audit, runs ``mlac-audit audit --preset smoke`` with the random and
base baselines (the base is a tiny BERT trained on the data), and opens what it wrote: a valid PNG
per figure, an HTML card naming every series, the result JSON, and an exit status that matches the verdict.
~1-2 min on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlac.cli.main", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, check=False)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_smoke_audit_through_the_cli(tmp_path: Path) -> None:
    from mlac.data import SynthConfig, generate_synthetic, save_dataset
    from mlac.models import build_tiny_bert, save_checkpoint

    ds, task = generate_synthetic(SynthConfig(n_bios=2000, seed=1))
    data = save_dataset(ds, task, tmp_path / "bios.parquet")
    model, tok = build_tiny_bert(len(task.beneficial_names), seed=5)
    save_checkpoint(model, tok, tmp_path / "audited", beneficial_names=task.beneficial_names)
    out = tmp_path / "audit"

    run = _cli("audit", "--model", str(tmp_path / "audited"), "--base", "tiny", "--data", str(data),
               "--baselines", "random,base", "--preset", "smoke", "--out", str(out), "--quiet")
    # the exit status is the verdict the audit wrote (0 PASS, 1 FAIL, 3 INCONCLUSIVE), printed last
    assert (out / "result.json").is_file(), f"exit {run.returncode}, no result.json:\n{run.stderr[-3000:]}"
    status = json.loads((out / "result.json").read_text())["verdict"]["status"]
    assert run.returncode == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[status], run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1].startswith(f"verdict: {status}")
    assert "study created" not in run.stderr  # Optuna's per-study INFO lines are silenced without --verbose
    for label in ("audited", "random", "base"):
        assert label in run.stdout  # the closing table names every model

    studies = json.loads((out / "studies.json").read_text())
    assert len(studies) == 3 * 2 * 2 * 2
    assert {(s["model"], s["task"], s["n"]) for s in studies} == {
        (m, t, n) for m in ("audited", "random", "base") for t in ("harmful", "beneficial") for n in (20, 100)
    }
    base_harm = [s["report_accuracy"] for s in studies if s["model"] == "base" and s["task"] == "harmful" and s["n"] == 100]
    rand_harm = [s["report_accuracy"] for s in studies if s["model"] == "random" and s["task"] == "harmful" and s["n"] == 100]
    assert sum(base_harm) / 2 > sum(rand_harm) / 2 + 0.05

    pngs = sorted(out.rglob("*.png"))
    assert pngs, "no figure written"
    for png in pngs:
        w, h = _png_size(png)
        assert w > 100 and h > 100
    html_files = sorted(out.rglob("*.html"))
    assert html_files
    html = html_files[0].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert "data:image/png;base64," in html
    for label in ("audited", "random", "base"):
        assert label in html
    results = [p for p in out.glob("*.json") if p.name not in ("studies.json",)]
    assert results, "no result JSON"

    before = {p: p.stat().st_mtime_ns for p in pngs}
    again = _cli("report", str(out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert any(p.stat().st_mtime_ns != t for p, t in before.items())


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlac.cli.main import main

    rc = main(["audit", "--data", str(tmp_path / "none.parquet"), "--base", "tiny", "--baselines", "random,oracle",
               "--preset", "smoke", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown baseline" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:  # a usage error: argparse's, in one line
        main(["audit", "--data", str(tmp_path / "none.parquet"), "--preset", "turbo", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "invalid choice: 'turbo'" in err and len(err.strip().splitlines()) == 1
    rc = main(["audit", "--data", str(tmp_path / "none.parquet"), "--model", str(tmp_path / "missing"), "--preset", "smoke",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    rc = main(["report", str(tmp_path / "nowhere")])
    assert rc == 2 and "not a folder" in capsys.readouterr().err
