"""Fixtures of the MLAC behaviour test: the setting of :mod:`tests.behaviour.setting`, built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bios_setting():
    """Encoded splits (base training, MLAC training, attacker pool of 100, held-out eval) and the base model."""
    from tests.behaviour.setting import build_setting

    return build_setting()
