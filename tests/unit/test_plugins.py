"""Entry-point plug-ins: a package's attack registers when mlac.attacks loads it; a broken one is skipped, logged."""

from __future__ import annotations

from importlib import metadata

import pytest

from mlac.attacks import AttackParams, attack_kinds, unregister_attack
from mlac.plugins import ATTACKS_GROUP, load_plugins


def test_entry_point_plugins_register_and_a_broken_one_is_skipped(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    points = [metadata.EntryPoint("thirdparty_probe", "tests.unit.plugin_fixtures.extra_attack", ATTACKS_GROUP),
              metadata.EntryPoint("broken", "tests.unit.plugin_fixtures.broken", ATTACKS_GROUP)]
    monkeypatch.setattr(metadata, "entry_points", lambda group: [p for p in points if p.group == group])
    assert "thirdparty_probe" not in attack_kinds()
    try:
        assert load_plugins(ATTACKS_GROUP) == ["thirdparty_probe"]
        assert "thirdparty_probe" in attack_kinds()
        assert AttackParams(kind="thirdparty_probe").kind == "thirdparty_probe"
        assert "broken" in caplog.text and "failed to import" in caplog.text
        assert load_plugins("mlac_audit.nothing") == []
    finally:
        unregister_attack("thirdparty_probe")
