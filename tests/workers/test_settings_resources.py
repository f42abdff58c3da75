"""Ray settings: validation with fix-it messages, environment parsing, what trials and censor runs ask for."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlac.errors import ConfigError
from workers.resources import adopt_assigned_cpus, censor_options, trial_gpus, trial_options
from workers.settings import RaySettings


@pytest.mark.parametrize("bad", [{"trial_cpus": 0}, {"trial_gpus": -0.5}, {"gpu_share": 0}, {"gpu_share": 1.5},
                                 {"max_concurrency": 0}, {"max_group": 0}, {"trial_resources": {"attack_node": 0}}])
def test_bad_settings_say_what_to_fix(bad: dict) -> None:
    with pytest.raises(ConfigError):
        RaySettings(**bad)


def test_from_env_reads_ray_address_and_mlac_ray_vars(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("MLAC_RAY_TRIAL_GPUS", "0.25")
    monkeypatch.setenv("MLAC_RAY_MAX_CONCURRENCY", "8")
    monkeypatch.setenv("MLAC_RAY_MAX_GROUP", "1")
    s = RaySettings.from_env(tmp_path)
    assert (s.address, s.trial_gpus, s.max_concurrency, s.data_dir) == ("10.0.0.5:6379", 0.25, 8, tmp_path)
    assert s.max_group == 1 and RaySettings().max_group == 32
    assert RaySettings.from_env(tmp_path, max_concurrency=3).max_concurrency == 3
    monkeypatch.setenv("MLAC_RAY_TRIAL_CPUS", "two")
    with pytest.raises(ConfigError, match="MLAC_RAY_TRIAL_CPUS"):
        RaySettings.from_env(tmp_path)


def test_gpus_auto_resolve_to_none_without_a_gpu_cluster() -> None:
    auto = RaySettings()
    assert trial_gpus(auto) == 0.0 and censor_options(auto) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert trial_gpus(RaySettings(trial_gpus=0.5)) == 0.5


def test_trial_options_carry_fractional_gpus_and_custom_resources() -> None:
    opts = trial_options(2.0, 0.25, {"attack_node": 1.0}, 4)
    assert opts == {"num_cpus": 2.0, "num_gpus": 0.25, "max_retries": 4, "retry_exceptions": False,
                    "resources": {"attack_node": 1.0}}


def test_threads_follow_the_assigned_cpus() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert adopt_assigned_cpus(2.0) == 2 and torch.get_num_threads() == 2
        assert adopt_assigned_cpus(0.5) == 1
    finally:
        torch.set_num_threads(before)
