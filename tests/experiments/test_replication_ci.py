"""The replication study at its ``ci`` scale, end to end: the pipeline runs and MLAC's main effect has its sign.

Runs ``python -m experiments.replication --scale ci`` in-process into a temporary folder (supervised tiny
base, one MLAC seed at the cpu scale's outer lr for 50 steps, a two-size probe audit; about 4 minutes of
one core) and checks that
every experiment wrote its results JSON and figures, that the cache makes a second run reuse every
piece, and the direction of the main effect: the attack MLAC simulates is less successful on the MLAC
model than on the base and on the weight-0 (beneficial-tuned) model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `experiments` is run from the repository root, not installed
    sys.path.insert(0, str(ROOT))

EXPERIMENTS = ("calibration", "exp1", "exp2", "exp3", "exp4", "exp5")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ci_scale_runs_end_to_end_and_mlac_lowers_the_simulated_attack(tmp_path):
    from experiments.replication.__main__ import main

    started = time.monotonic()
    assert main(["--scale", "ci", "--out", str(tmp_path)]) == 0
    print(f"ci scale: {time.monotonic() - started:.0f}s")
    for name in EXPERIMENTS:
        result = json.loads((tmp_path / name / "results.json").read_text())
        assert result["figures"], name
        for fig in result["figures"]:
            assert fig.endswith(".png") and (tmp_path / name / fig.rsplit("/", 1)[-1]).stat().st_size > 1000
    assert (tmp_path / "summary.json").is_file()

    exp2 = json.loads((tmp_path / "exp2" / "results.json").read_text())
    sim = {row["model"]: row["simulated"]["mean"] for row in exp2["table"]}
    mlac = next(v for k, v in sim.items() if "(main)" in k)
    print("simulated attack, n=100:", sim)
    assert mlac < sim["base"] - 0.03, sim
    assert mlac < sim["beneficial_tuned (w_adv=0)"], sim

    exp1 = json.loads((tmp_path / "exp1" / "results.json").read_text())
    curves = {(r["model"], r["task"], r["n"]): r["mean"] for r in exp1["table"]}
    assert {m for m, _, _ in curves} >= {"random", "base", "beneficial_tuned", "ac", "mlac_s0"}
    assert all(0.0 <= v <= 1.0 for v in curves.values())

    # Everything is cached: a second run recomputes nothing.
    again = time.monotonic()
    from experiments.replication.experiments import run_all

    results = run_all(tmp_path, "ci")
    assert results["pieces"]["computed"] == [], results["pieces"]["computed"]
    assert time.monotonic() - again < 120
