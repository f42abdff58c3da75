"""The defense registry: a defense registered from outside mlac runs through ``run_job`` untouched; configs and
presets are validated by their defense."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from mlac.audit.overrides import AuditOverrides, build_audit_request
from mlac.censor.config import MLACConfig
from mlac.defenses import (
    DefenseCall,
    DefenseResult,
    DefenseSpec,
    defense_names,
    get_defense,
    register,
    unregister,
)
from mlac.errors import ConfigError, StoppedError
from mlac.jobs import JobSpec, run_job
from mlac.models import load_checkpoint, validate_checkpoint_dir


@dataclass(frozen=True)
class CopyConfig:
    """Config of the test defense."""

    label: str = "copied"
    steps: int = 3


class CopyDefense:
    """A defense that only copies the base checkpoint (and says so in a file beside it)."""

    name = "copy_for_test"
    config_type = CopyConfig
    presets: Mapping[str, Mapping[str, Any]] = {"smoke": {"steps": 1}}

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def config_from_dict(self, values: Mapping[str, Any]) -> CopyConfig:
        unknown = sorted(set(values) - {"label", "steps"})
        if unknown:
            raise ConfigError(f"unknown copy config keys {unknown}")
        return CopyConfig(**values)

    def config_to_dict(self, config: CopyConfig) -> dict[str, Any]:
        return asdict(config)

    def training_steps(self, config: CopyConfig) -> tuple[int, int]:
        return config.steps, 0

    def apply(self, base: str, dataset: str, split_seed: int, config: CopyConfig, out_dir: Path, *,
              device: str | None = None, progress: Any = None, should_stop: Any = None) -> DefenseResult:
        self.calls.append((dataset, split_seed))
        for step in range(config.steps):
            if should_stop is not None and should_stop():
                raise StoppedError(f"copy stopped at step {step}")
            if progress is not None:
                progress({"event": "step", "step": step + 1})
        shutil.copytree(base, out_dir, dirs_exist_ok=True)
        (out_dir / "label.txt").write_text(config.label, encoding="utf-8")
        return DefenseResult(checkpoint=str(out_dir), steps_done=config.steps)


@pytest.fixture
def copy_defense() -> Iterator[CopyDefense]:
    defense = CopyDefense()
    register(defense)
    yield defense
    unregister(defense.name)


def _defend_spec(bios: Path, base: Path, **config: Any) -> JobSpec:
    return JobSpec(kind="defend", dataset=str(bios), base=str(base), split_seed=3,
                   defense=DefenseSpec.build("copy_for_test", "smoke", config))


def test_a_defense_registered_here_runs_through_run_job(copy_defense: CopyDefense, bios: Path, base_checkpoint: Path,
                                                        tmp_path: Path) -> None:
    assert "copy_for_test" in defense_names() and get_defense("copy_for_test") is copy_defense
    spec = _defend_spec(bios, base_checkpoint, label="mine")
    assert JobSpec.from_dict(spec.to_dict()) == spec  # the plain form names the defense, the registry parses it
    events: list[dict[str, Any]] = []
    outcome = run_job(spec, tmp_path / "job", progress=events.append)
    assert outcome.state == "SUCCEEDED" and outcome.verdict is None and outcome.failure is None
    assert outcome.result_path == str(tmp_path / "job" / "censored")
    assert (Path(outcome.result_path) / "label.txt").read_text() == "mine"
    assert validate_checkpoint_dir(outcome.result_path).sha256 == validate_checkpoint_dir(base_checkpoint).sha256
    assert copy_defense.calls == [(str(bios), 3)]  # the spec's split seed reaches the defense
    assert [e["step"] for e in events if e.get("event") == "step"] == [1]  # the smoke preset: 1 step
    assert all(e["stage"] == "censor" and e["defense"] == "copy_for_test" for e in events)


def test_defend_then_audit_audits_the_defended_model(copy_defense: CopyDefense, bios: Path, base_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    request = build_audit_request("smoke", dataset=str(bios), base=str(base_checkpoint), baselines=("random",),
                                  overrides=AuditOverrides(sizes=(20,), seeds=(0,), tasks=("harmful",), max_trials=1,
                                                           patience=1, reruns=1))
    spec = JobSpec(kind="defend_then_audit", dataset=str(bios), base=str(base_checkpoint),
                   defense=DefenseSpec.build("copy_for_test"), request=request)
    outcome = run_job(spec, tmp_path / "job")
    assert outcome.state == "SUCCEEDED", outcome.failure
    assert outcome.result_path == str(tmp_path / "job" / "audit")
    assert outcome.verdict in ("PASS", "FAIL", "INCONCLUSIVE")
    result = json.loads((Path(outcome.result_path) / "result.json").read_text())
    assert result["verdict"]["status"] == outcome.verdict  # the verdict comes from the AuditResult run_audit returned
    assert {c["model"] for c in result["curves"]} == {"censored", "random"}  # the defended model joined the models


def test_an_injected_defend_replaces_the_in_process_one(copy_defense: CopyDefense, bios: Path, base_checkpoint: Path,
                                                        tmp_path: Path) -> None:
    calls: list[DefenseCall] = []

    def defend(call: DefenseCall) -> str:
        calls.append(call)
        return str(base_checkpoint)

    outcome = run_job(_defend_spec(bios, base_checkpoint), tmp_path / "job", defend=defend)
    assert outcome.state == "SUCCEEDED" and outcome.result_path == str(base_checkpoint)
    assert copy_defense.calls == [] and len(calls) == 1
    assert DefenseCall.from_dict(calls[0].to_dict()) == calls[0] and calls[0].split_seed == 3


def test_a_stop_cancels_and_an_error_fails(copy_defense: CopyDefense, bios: Path, base_checkpoint: Path,
                                           tmp_path: Path) -> None:
    stopped = run_job(_defend_spec(bios, base_checkpoint), tmp_path / "a", should_stop=lambda: True)
    assert stopped.state == "CANCELLED" and stopped.failure is not None and "copy stopped" in stopped.failure.cause
    broken = JobSpec(kind="defend", dataset=str(tmp_path / "missing.parquet"), base=str(tmp_path / "no-such-dir"),
                     defense=DefenseSpec.build("mlac", "smoke"))
    failed = run_job(broken, tmp_path / "b")
    assert failed.state == "FAILED" and failed.failure is not None and failed.failure.detail


def test_registering_a_taken_name_or_a_non_defense_is_refused(copy_defense: CopyDefense) -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register(CopyDefense())
    with pytest.raises(ConfigError, match="not a Defense"):
        register(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown defense 'nope'; choose from .*beneficial_only"):
        get_defense("nope")


def test_configs_come_from_the_presets_with_overrides() -> None:
    smoke = DefenseSpec.build("mlac", "smoke", {"outer_steps": 5})
    assert isinstance(smoke.config, MLACConfig) and smoke.config.outer_steps == 5 and smoke.config.inner_steps == 1
    assert DefenseSpec.build("mlac", "paper").config == MLACConfig()
    assert DefenseSpec.build("ac", "smoke").config.steps == 20  # the audit's smoke ac baseline
    assert DefenseSpec.build("beneficial_only", "quick").config.steps == 100
    assert DefenseSpec.from_dict(DefenseSpec.build("ac", "quick").to_dict()) == DefenseSpec.build("ac", "quick")
    with pytest.raises(ConfigError, match=r"unknown ac config keys \['inner_steps'\]"):
        DefenseSpec.build("ac", "smoke", {"inner_steps": 3})
    with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
        DefenseSpec.build("beneficial_only", None, {"steps": 0})
    with pytest.raises(ConfigError, match="no preset 'huge'"):
        DefenseSpec.build("ac", "huge")


def test_job_specs_read_the_older_plain_form_and_check_the_split_seed(bios: Path, base_checkpoint: Path) -> None:
    old = JobSpec.from_dict({"base": str(base_checkpoint), "dataset": str(bios), "censor_config": {"outer_steps": 7}},
                            kind="censor")
    assert old.kind == "defend" and old.defense is not None and old.defense.name == "mlac"
    assert old.defense.config == MLACConfig(outer_steps=7) and old.split_seed == 0
    request = build_audit_request("smoke", dataset=str(bios), base=str(base_checkpoint), baselines=("random",),
                                  overrides=AuditOverrides(split_seed=4))
    both = JobSpec.from_dict({"base": str(base_checkpoint), "dataset": str(bios), "request": request.to_dict()},
                             kind="censor_then_audit")
    assert both.kind == "defend_then_audit" and both.split_seed == 4  # the request's, where the spec names none
    with pytest.raises(ConfigError, match="split_seed"):
        JobSpec(kind="defend_then_audit", dataset=str(bios), base=str(base_checkpoint), split_seed=0,
                defense=DefenseSpec.build("ac"), request=request)
    with pytest.raises(ConfigError, match="choose from"):
        JobSpec.from_dict({}, kind="train")
    with pytest.raises(ConfigError, match="missing dataset"):
        JobSpec.from_dict({"base": "/x"}, kind="defend")
    with pytest.raises(ConfigError, match="runs no defense"):
        JobSpec(kind="audit", request=request, defense=DefenseSpec.build("ac"))
    assert load_checkpoint(base_checkpoint).sha256  # the fixture is a real checkpoint


def test_defense_runs_are_priced_like_censoring_runs(copy_defense: CopyDefense) -> None:
    from mlac.audit.cost import defense_cost

    assert defense_cost(DefenseSpec.build("mlac", "smoke")).inner_updates == 12 * 1
    ac = defense_cost(DefenseSpec.build("ac", "quick"))
    assert (ac.outer_steps, ac.inner_steps, ac.inner_updates) == (50, 0, 0)
    assert defense_cost(DefenseSpec.build("copy_for_test", "smoke")).outer_steps == 1  # a registered one too
