"""Audit requests: presets, expansion counts, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlac.audit.presets import PRESETS, build_request
from mlac.audit.protocol import AuditRequest, expand, model_labels, plan_counts
from mlac.audit.runner import run_audit
from mlac.audit.space import SearchSpace
from mlac.errors import CheckpointError, ConfigError, DataError


def test_expansion_counts(audit_dataset: Path, tiny_checkpoint: Path) -> None:
    req = build_request("paper", dataset=str(audit_dataset), models=(str(tiny_checkpoint), str(tiny_checkpoint)),
                        base="tiny", baselines=("random", "base", "ac"))
    req.validate()
    labels = [label for label, _ in model_labels(req)]
    assert labels == ["tiny", "tiny-2", "random", "base", "ac"]
    counts = plan_counts(req)
    assert counts["studies"] == 5 * 2 * 4 * 6 == 240
    assert counts["max_trials"] == 240 * 50 and counts["reruns"] == 240 * 15
    keys = expand(req, {label: f"/ckpt/{label}" for label in labels})
    assert len(keys) == 240 and len(set(keys)) == 240
    assert {k.n for k in keys} == {20, 50, 100, 200} and {k.seed for k in keys} == set(range(6))
    smoke = build_request("smoke", dataset=str(audit_dataset), models=(str(tiny_checkpoint),), base="tiny", baselines=("random", "base"))
    assert plan_counts(smoke)["studies"] == 3 * 2 * 2 * 2
    assert smoke.search.max_trials == 4 and smoke.space.steps_max <= 100
    assert AuditRequest.from_dict(smoke.to_dict()) == smoke
    assert set(PRESETS) == {"smoke", "quick", "paper", "strong"}


def test_bad_input_errors(tmp_path: Path, audit_dataset: Path, tiny_checkpoint: Path) -> None:
    ds = str(audit_dataset)
    with pytest.raises(ConfigError, match="unknown preset"):
        build_request("fast", dataset=ds)
    with pytest.raises(ConfigError, match="unknown baseline"):
        build_request("smoke", dataset=ds, base="tiny", baselines=("random", "oracle")).validate()
    with pytest.raises(ConfigError, match="--base"):
        build_request("smoke", dataset=ds, baselines=("random",)).validate()
    with pytest.raises(ConfigError, match="nothing to audit"):
        build_request("smoke", dataset=ds).validate()
    with pytest.raises(ConfigError, match="search space is empty"):
        build_request("smoke", dataset=ds, models=(str(tiny_checkpoint),), space=SearchSpace(kinds=()))
    with pytest.raises(CheckpointError, match="not found"):
        build_request("smoke", dataset=ds, models=(str(tmp_path / "missing"),)).validate()
    with pytest.raises(DataError, match="dataset file not found"):
        build_request("smoke", dataset=str(tmp_path / "none.parquet"), models=(str(tiny_checkpoint),)).validate()
    with pytest.raises(ConfigError, match="unknown audit request keys"):
        AuditRequest.from_dict({"dataset": ds, "modles": []})
    # n larger than the attack pool (320 rows): refused before any training or search.
    req = build_request("smoke", dataset=ds, models=(str(tiny_checkpoint),), sizes=(20, 5000))
    with pytest.raises(DataError, match="exceed the attack pool"):
        run_audit(req, tmp_path / "out")
    assert not (tmp_path / "out" / "optuna.db").exists() and not (tmp_path / "out" / "baselines").exists()


def test_verdict_policy_comes_from_the_request_and_the_cli(audit_dataset: Path, tiny_checkpoint: Path) -> None:
    from mlac.cli.audit_cmd import build_request_from_args
    from mlac.cli.main import build_parser

    req = build_request("smoke", dataset=str(audit_dataset), models=(str(tiny_checkpoint),),
                        verdict={"epsilon_beneficial": 0.1})
    assert req.verdict.epsilon_beneficial == 0.1 and req.verdict.delta_random == 0.05
    assert AuditRequest.from_dict(req.to_dict()) == req
    with pytest.raises(ConfigError, match="delta_random"):
        build_request("smoke", dataset=str(audit_dataset), verdict={"delta_random": 2.0})
    with pytest.raises(ConfigError, match="unknown"):
        build_request("smoke", dataset=str(audit_dataset), verdict={"delta": 0.1})
    args = build_parser().parse_args(["audit", "--data", str(audit_dataset), "--model", str(tiny_checkpoint),
                                      "--preset", "smoke", "--out", "o", "--verdict-delta", "0.3",
                                      "--verdict-statistic", "ci", "--min-data-cost", "10"])
    policy = build_request_from_args(args).verdict
    assert (policy.delta_random, policy.statistic, policy.min_data_cost_multiplier) == (0.3, "ci", 10.0)
