"""Defenses over the API: ``defend_then_audit`` and ``defend`` jobs with a named defense, the ``censor`` alias, 422s,
and the dispatcher running the spec computed at submission."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.jobspec import WORKER_KEY

from .conftest import auth, checkpoint_files, make_settings

#: The smallest audit that still gives a verdict: one size, one seed, the harmful task, one trial and one rerun.
TINY_AUDIT = {"sizes": [20], "seeds": [0], "tasks": ["harmful"], "baselines": ["random"], "max_trials": 1,
              "patience": 1, "reruns": 1}


def _wait(client: TestClient, job_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth()).json()
        if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end: {job}")


def _inputs(client: TestClient, checkpoint: Path) -> tuple[str, str]:
    ck = client.post("/v1/checkpoints", files=checkpoint_files(checkpoint), headers=auth()).json()["id"]
    ds = client.post("/v1/datasets/synthetic", json={"n_bios": 800}, headers=auth()).json()["id"]
    return ck, ds


class RecordingRunner:
    """A runner that runs nothing and keeps what the dispatcher hands it."""

    name = "recording"

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, dict[str, Any]]] = []

    def submit(self, job_id: str, kind: str, spec: dict[str, Any], sink: Any) -> None:
        self.submitted.append((job_id, kind, spec))

    def cancel(self, job_id: str) -> None:
        pass

    def is_running(self, job_id: str) -> bool:
        return False

    def shutdown(self) -> None:
        pass


@pytest.mark.parametrize(("defense", "config"), [("ac", {"steps": 2, "max_length": 32}),
                                                 ("beneficial_only", {"steps": 2, "batch_size": 8, "max_length": 32})])
def test_defend_then_audit_runs_the_named_defense(tmp_path: Path, tiny_checkpoint: Path, defense: str,
                                                  config: dict[str, Any]) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        ck, ds = _inputs(client, tiny_checkpoint)
        body = {"kind": "defend_then_audit", "dataset_id": ds, "checkpoint_id": ck, "preset": "smoke",
                "defense": {"name": defense, "config": config}, "audit": TINY_AUDIT}
        r = client.post("/v1/jobs", json=body, headers=auth())
        assert r.status_code == 201, r.text
        assert r.json()["estimate"]["censor_outer_steps"] == 2 and r.json()["estimate"]["censor_steps"] == 0
        shown = r.json()["request"]
        assert WORKER_KEY not in shown and shown["defense"]["name"] == defense  # the spec's server paths stay inside
        assert {k: v for k, v in shown["defense"]["config"].items() if v is not None} == config
        job = _wait(client, r.json()["id"], 300)
        assert job["state"] == "SUCCEEDED", job["error"]
        result = client.get(f"/v1/jobs/{job['id']}/result", headers=auth()).json()
        assert job["verdict"] == result["verdict"]["status"]  # the runner's outcome carried it
        assert {c["model"] for c in result["curves"]} == {"random", "censored"}  # the defended model joined
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth()) as stream:
            text = "".join(stream.iter_text())
        assert f'"defense": "{defense}"' in text and '"stage": "censor"' in text
        defended = Path(client.app.state.ctx.settings.data_dir) / "artifacts" / "jobs" / job["id"] / "censored"
        provenance = json.loads((defended / "provenance.json").read_text())
        assert provenance["training"]["kind"] == ("mlac" if defense == "ac" else "beneficial_only")


def test_a_defend_job_registers_the_defended_checkpoint(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        ck, ds = _inputs(client, tiny_checkpoint)
        body = {"kind": "defend", "dataset_id": ds, "checkpoint_id": ck,
                "defense": {"name": "beneficial_only", "config": {"steps": 2, "batch_size": 8, "max_length": 32}}}
        job = _wait(client, client.post("/v1/jobs", json=body, headers=auth()).json()["id"], 120)
        assert job["state"] == "SUCCEEDED", job["error"]
        assert job["verdict"] is None
        result = client.get(f"/v1/jobs/{job['id']}/result", headers=auth()).json()
        assert result["kind"] == "defend" and result["provenance"]["training"]["kind"] == "beneficial_only"
        deadline = time.monotonic() + 20  # the sink registers the checkpoint just after recording the end
        while result["checkpoint_id"] not in (ids := {c["id"] for c in
                                                     client.get("/v1/checkpoints", headers=auth()).json()["items"]}):
            assert time.monotonic() < deadline, "the defended checkpoint was not registered"
            time.sleep(0.2)
        assert ck in ids


def test_the_censor_alias_is_the_mlac_defense_and_dispatch_runs_the_stored_spec(
        tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = RecordingRunner()
    with TestClient(create_app(make_settings(tmp_path), runner=runner, background=False)) as client:
        ck, ds = _inputs(client, tiny_checkpoint)
        old = {"kind": "censor_then_audit", "dataset_id": ds, "checkpoint_id": ck, "censor": {"outer_steps": 3},
               "audit": {**TINY_AUDIT, "split_seed": 2}}
        new = {"kind": "defend_then_audit", "dataset_id": ds, "checkpoint_id": ck,
               "defense": {"name": "mlac", "config": {"outer_steps": 3}}, "audit": {**TINY_AUDIT, "split_seed": 2}}
        estimates = [client.post("/v1/jobs/estimate", json=b, headers=auth()).json()["estimate"] for b in (old, new)]
        assert estimates[0] == estimates[1] and estimates[0]["censor_steps"] == 3  # smoke preset: K = 1
        ids = [client.post("/v1/jobs", json=b, headers=auth()).json()["id"] for b in (old, new)]
        assert client.get(f"/v1/jobs/{ids[0]}", headers=auth()).json()["kind"] == "censor_then_audit"

        import service.jobspec

        def no_resolving(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("dispatch resolved the spec again")

        monkeypatch.setattr(service.jobspec, "worker_spec", no_resolving)
        client.app.state.ctx.dispatcher.tick()
        specs = {job_id: (kind, spec) for job_id, kind, spec in runner.submitted}
        assert set(specs) == set(ids)
        (old_kind, old_spec), (_, new_spec) = specs[ids[0]], specs[ids[1]]
        assert old_kind == "censor_then_audit" and old_spec == new_spec  # one spec: the alias is the mlac defense
        assert old_spec["kind"] == "defend_then_audit" and old_spec["split_seed"] == 2
        assert old_spec["request"]["split_seed"] == 2  # the defense trains on the split the audit uses
        assert old_spec["defense"]["name"] == "mlac" and old_spec["defense"]["config"]["outer_steps"] == 3
        assert old_spec["defense"]["config"]["max_length"] == 48  # the rest from the smoke preset


@pytest.mark.parametrize(("change", "message"), [
    ({"defense": {"name": "nope", "config": {}}}, "does not match any of the expected tags"),
    ({"defense": {"name": "ac", "config": {"inner_steps": 1}}}, "Extra inputs are not permitted"),
    ({"defense": {"name": "beneficial_only", "config": {"steps": 0}}}, "greater than or equal to 1"),
    ({"defense": {"name": "ac"}, "censor": {"outer_steps": 3}}, "defense.config, not in censor"),
    ({"kind": "audit", "defense": {"name": "ac"}}, "runs no defense"),
    ({"kind": "defend", "checkpoint_id": None}, "needs checkpoint_id"),
])
def test_bad_defenses_are_refused_with_422(client: TestClient, tiny_checkpoint: Path, change: dict[str, Any],
                                           message: str) -> None:
    ck, ds = _inputs(client, tiny_checkpoint)
    body = {"kind": "defend_then_audit", "dataset_id": ds, "checkpoint_id": ck, **change}
    r = client.post("/v1/jobs", json=body, headers=auth())
    assert r.status_code == 422, r.text
    assert message in r.text
