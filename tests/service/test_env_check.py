"""Every MLAC_ variable the docs and manifests name is read by something; unknown ones are named at start-up."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from service.env_check import NOT_YET_READ, REMOVED, known_variables, unknown_variables

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = [*sorted((ROOT / "docker").iterdir()), *sorted((ROOT / "deploy").rglob("*"))]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _named(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        if path.is_file():
            names.update(re.findall(r"\bMLAC_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8", errors="replace")))
    return names


def test_unknown_variables_are_named_with_a_hint() -> None:
    env = {"MLAC_ADMIN_API_KEY": "x", "MLAC_ADMIN_KEY": "y", "MLAC_ADMIN_KEY_FILE": "/run/k", "MLAC_RAY_NUM_CPUS": "2",
           "MLAC_MAX_RUNING_JOBS": "3", "MLAC_WEBHOOK_SECRET": "s", "MLAC_ARTIFACT_URL": "s3://b", "MLAC_CACHE_DIR": "/c",
           "MLAC_ARTIFACT_URI": "s3://b", "PATH": "/bin"}
    found = {u.name: u.hint for u in unknown_variables(env)}
    assert set(found) == {"MLAC_ADMIN_API_KEY", "MLAC_MAX_RUNING_JOBS", "MLAC_WEBHOOK_SECRET", "MLAC_ARTIFACT_URI"}
    assert found["MLAC_ADMIN_API_KEY"] == "did you mean MLAC_ADMIN_KEY?"
    assert found["MLAC_MAX_RUNING_JOBS"] == "did you mean MLAC_MAX_RUNNING_JOBS?"
    assert found["MLAC_WEBHOOK_SECRET"] == REMOVED["MLAC_WEBHOOK_SECRET"]
    assert found["MLAC_ARTIFACT_URI"] == "did you mean MLAC_ARTIFACT_URL?"  # read now: the artifact store
    assert not NOT_YET_READ


def test_every_variable_the_manifests_set_is_read() -> None:
    """Compose and KubeRay once set MLAC_ADMIN_API_KEY, which nothing read (the containers made their own key)."""
    named = _named(MANIFESTS)
    assert {"MLAC_ADMIN_KEY_FILE", "MLAC_PORT", "MLAC_ROLE_FILE"} <= named  # the scan sees the manifests
    unread = {u.name for u in unknown_variables(dict.fromkeys(named, "x"))}
    assert unread <= set(NOT_YET_READ), unread


def test_every_variable_the_docs_name_is_read_or_explained() -> None:
    named = _named(DOCS)
    assert {"MLAC_ADMIN_KEY", "MLAC_WEBHOOK_ALLOW", "MLAC_QUOTA_MAX_ACTIVE_JOBS"} <= named
    assert not named - known_variables() - set(NOT_YET_READ) - set(REMOVED) - {"MLAC_"}


def test_the_service_warns_about_unknown_variables_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    from .conftest import make_settings

    monkeypatch.setenv("MLAC_ADMIN_API_KEY", "mlac_0123456789abcdef")
    with caplog.at_level(logging.WARNING, logger="service.app"), TestClient(create_app(make_settings(tmp_path))):
        pass
    assert "MLAC_ADMIN_API_KEY (did you mean MLAC_ADMIN_KEY?)" in caplog.text
