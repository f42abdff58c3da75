"""MLAC_RAY_TRIAL_RESOURCES: how the multi-node test (and a deployment) routes trials to a custom resource."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlac.errors import ConfigError
from workers.resources import trial_options
from workers.settings import TRIAL_RESOURCES_ENV, RaySettings


def test_trial_resources_come_from_a_json_object(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(TRIAL_RESOURCES_ENV, '{"mlac_trial": 1, "attack_node": 0.5}')
    settings = RaySettings.from_env(tmp_path)
    assert settings.trial_resources == {"mlac_trial": 1.0, "attack_node": 0.5}
    opts = trial_options(settings.trial_cpus, 0.0, settings.trial_resources, settings.trial_max_retries)
    assert opts["resources"] == {"mlac_trial": 1.0, "attack_node": 0.5}


@pytest.mark.parametrize("raw", ["mlac_trial=1", "[1]", '{"mlac_trial": "one"}', '{"mlac_trial": true}', '{"mlac_trial": 0}'])
def test_bad_trial_resources_say_what_to_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str) -> None:
    monkeypatch.setenv(TRIAL_RESOURCES_ENV, raw)
    with pytest.raises(ConfigError):
        RaySettings.from_env(tmp_path)
