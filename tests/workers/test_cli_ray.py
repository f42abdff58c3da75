"""`mlac-audit censor --ray` and `mlac-audit audit --ray` run through the Ray layer (the shared local Ray)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest

from mlac.cli.main import main

pytestmark = pytest.mark.ray


def _last_json(text: str) -> dict:
    """The JSON object a command printed last (its summary), ignoring lines before it."""
    start = text.rindex("\n{") + 1 if "\n{" in text else text.index("{")
    return json.loads(text[start:])


def test_censor_with_ray_trains_in_the_actor(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "censored"
    rc = main(["censor", "--base", str(tiny_assets["base"]), "--data", str(tiny_assets["data"]), "--out", str(out),
               "--steps", "6", "--inner-steps", "1", "--outer-batch", "8", "--inner-batch-sizes", "8",
               "--max-length", "48", "--val-every", "3", "--no-summary-attack", "--ray"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    summary = _last_json(captured.out)
    assert summary["ray"] is True and summary["steps"] == 6
    assert (out / "model.safetensors").exists()
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["training"]["kind"] == "mlac" and provenance["training"]["steps_done"] == 6


def test_audit_with_ray_runs_every_trial_in_a_ray_worker(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "audit"
    rc = main(["audit", "--model", str(tiny_assets["base"]), "--data", str(tiny_assets["data"]),
               "--base", str(tiny_assets["base"]), "--baselines", "random", "--preset", "smoke", "--tasks", "harmful", "--sizes", "20", "--seeds", "0", "--out", str(out),
               "--quiet", "--ray", "--exit-zero"])  # about where trials run, not the verdict
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    storage = f"sqlite:///{out / 'optuna.db'}"
    summaries = optuna.get_all_study_summaries(storage)
    assert len(summaries) == 2  # (base checkpoint, random) x harmful x n=20 x seed 0
    placements = []
    for summary in summaries:
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        placements += [t.user_attrs.get("placement") for t in study.trials if t.state.is_finished()]
    assert placements and all(p is not None for p in placements), "a trial ran outside Ray"
    assert all(p["worker_pid"] != os.getpid() for p in placements)
    assert {p["node_id"] for p in placements} == {ray_cluster_node_id()}


def test_audit_with_ray_through_an_artifact_store(ray_cluster, tiny_assets: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``MLAC_ARTIFACT_URL`` set: the trials get the checkpoint and the dataset as content references (published
    once to the store, fetched into the node's cache), not this machine's paths."""
    from workers.artifacts.store import FsspecStore
    from workers.artifacts.trees import read_tree

    store_url = f"file://{tmp_path / 'store'}"
    monkeypatch.setenv("MLAC_ARTIFACT_URL", store_url)
    out = tmp_path / "audit"
    rc = main(["audit", "--model", str(tiny_assets["base"]), "--data", str(tiny_assets["data"]), "--preset", "smoke",
               "--tasks", "harmful", "--sizes", "20", "--seeds", "0", "--out", str(out), "--quiet", "--ray",
               "--exit-zero"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    store = FsspecStore(store_url)
    trees = [k.removeprefix("trees/").removesuffix(".json") for k in store.list("trees")]
    files = {name for t in trees for name in read_tree(store, t).files}
    assert {"model.safetensors", "config.json", Path(tiny_assets["data"]).name} <= files, files
    storage = f"sqlite:///{out / 'optuna.db'}"
    trials = [t for s in optuna.get_all_study_summaries(storage)
              for t in optuna.load_study(study_name=s.study_name, storage=storage).trials if t.state.is_finished()]
    assert trials and all(t.user_attrs.get("placement") for t in trials), "a trial ran outside Ray"


def ray_cluster_node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())
