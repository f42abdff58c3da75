"""Schema validation of the deployment files, offline: the compose file against the Compose
Specification (the copy vendored in check-jsonschema) and the Kubernetes manifests against the
Kubernetes OpenAPI schemas (bundled in kubernetes-validate), strict about unknown fields. The RayCluster
is a custom resource with no bundled schema: its head and worker pod templates are validated as
PodTemplates. Both checkers are dev dependencies; nothing is fetched from the network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
KUBERAY = ROOT / "deploy" / "kuberay"


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every Kubernetes document in deploy/kuberay."""
    found = []
    for path in sorted(KUBERAY.glob("*.yaml")):
        with path.open(encoding="utf-8") as handle:
            found.extend((path.name, doc) for doc in yaml.safe_load_all(handle) if doc)
    return found


def short(error: Exception) -> str:
    """The first lines of a (very long) schema validation error."""
    return "\n".join(str(error).splitlines()[:3])


def test_compose_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_an_unknown_compose_key(tmp_path: Path) -> None:
    """Guards the test above: a misspelt key must fail validation."""
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE_FILE.read_text(encoding="utf-8").replace("shm_size:", "shm_sise:"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "shm_sise" in result.stdout


@pytest.mark.parametrize(
    "name,doc",
    [(f"{name}:{doc['kind']}", doc) for name, doc in manifests() if doc["kind"] != "RayCluster"],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_kubernetes_manifest_matches_the_schema(name: str, doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name}: {short(exc)}")


def test_raycluster_pod_templates_match_the_schema() -> None:
    clusters = [doc for _, doc in manifests() if doc["kind"] == "RayCluster"]
    assert len(clusters) == 1
    spec = clusters[0]["spec"]
    templates = {"head": spec["headGroupSpec"]["template"]}
    templates.update({group["groupName"]: group["template"] for group in spec["workerGroupSpecs"]})
    for group, template in templates.items():
        wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": group}, "template": template}
        try:
            kubernetes_validate.validate(wrapper, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"RayCluster group {group}: {short(exc)}")
