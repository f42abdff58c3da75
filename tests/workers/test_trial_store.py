"""Trial results are written once per (job, study, trial) in the artifact store: a retried trial is never counted
twice, and a trial whose result is stored is not run again."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from mlac.contracts import TrialResult
from workers.executor import RayTrialExecutor
from workers.trial_store import TrialResultStore, spec_hash, study_folder


def _spec(trial_seed: int = 7, **changes: Any) -> dict[str, Any]:
    spec = {"checkpoint": "/nowhere/ckpt", "dataset": "/nowhere/data.parquet", "task": "harmful", "n": 20,
            "subset_seed": 3, "params": {"kind": "probe", "lr": 0.01}, "trial_seed": trial_seed, "device": "cpu",
            "tag": {"model": "base", "task": "harmful", "n": 20, "seed": 0}}
    spec.update(changes)
    return spec


def _result(report_accuracy: float) -> TrialResult:
    return TrialResult(ok=True, selection_curve=((10, 0.5),), best_selection_accuracy=0.5, best_step=10,
                       report_accuracy=report_accuracy, steps_run=10, pruned=False, wall_s=0.1, flops=1.0,
                       report_majority_rate=0.5, node_id="node-a", worker_pid=42)


def test_first_write_wins(tmp_path: Path) -> None:
    store = TrialResultStore(str(tmp_path))
    first, mine = store.put_once(_spec(), _result(0.6))
    assert mine and first.report_accuracy == 0.6
    second, mine2 = store.put_once(_spec(), _result(0.9))
    assert not mine2 and second == _result(0.6)
    assert store.get(_spec()) == _result(0.6)
    assert store.count() == 1


def test_concurrent_attempts_store_exactly_one(tmp_path: Path) -> None:
    store = TrialResultStore(str(tmp_path))
    outcomes: list[tuple[TrialResult, bool]] = []
    lock = threading.Lock()

    def attempt(value: float) -> None:
        got = store.put_once(_spec(), _result(value))
        with lock:
            outcomes.append(got)

    threads = [threading.Thread(target=attempt, args=(i / 10,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(mine for _, mine in outcomes) == 1
    assert len({r.report_accuracy for r, _ in outcomes}) == 1
    assert store.count() == 1 and not list(tmp_path.rglob(".tmp-*"))


def test_results_live_under_the_jobs_prefix(tmp_path: Path) -> None:
    from workers.artifacts.store import FsspecStore

    store = TrialResultStore(FsspecStore(str(tmp_path)), "jobs/j1/trials")
    store.put_once(_spec(), _result(0.6))
    assert store.key(_spec()).startswith("jobs/j1/trials/base__harmful__n20__s0/7-")
    assert (tmp_path / store.key(_spec())).is_file() and store.count() == 1


def test_keys_separate_trials_studies_and_specs(tmp_path: Path) -> None:
    store = TrialResultStore(str(tmp_path))
    variants = [_spec(), _spec(trial_seed=8), _spec(tag={"model": "base", "task": "harmful", "n": 20, "seed": 1}),
                _spec(params={"kind": "probe", "lr": 0.02})]
    assert len({store.key(v) for v in variants}) == 4
    assert spec_hash(_spec(device="cpu")) == spec_hash(_spec(device="cuda"))  # where it ran is not what it is


def test_a_stored_trial_is_returned_without_running(tmp_path: Path) -> None:
    store = TrialResultStore(str(tmp_path))
    store.put_once(_spec(), _result(0.55))
    # No Ray is running and the checkpoint does not exist: submitting the trial would fail, so this proves the
    # executor answered from the store.
    executor = RayTrialExecutor(results=store)
    assert executor.map([_spec()]) == [{**_result(0.55).to_dict(), "reused": True}]
    assert executor.executed == 1


def test_the_file_is_the_plain_trial_result(tmp_path: Path) -> None:
    """The stored file is exactly TrialResult.to_dict (sorted keys) under the study's folder, as job folders written
    before the typed results hold it: a resumed job finds its trials."""
    store = TrialResultStore(str(tmp_path))
    store.put_once(_spec(), _result(0.6))
    path = tmp_path / store.key(_spec())
    assert path.parent.name == study_folder(_spec()) == "base__harmful__n20__s0"
    assert path.read_text(encoding="utf-8") == json.dumps(_result(0.6).to_dict(), sort_keys=True)
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "ok": True, "selection_curve": [[10, 0.5]], "best_selection_accuracy": 0.5, "best_step": 10,
        "report_accuracy": 0.6, "steps_run": 10, "pruned": False, "wall_s": 0.1, "flops": 1.0,
        "report_majority_rate": 0.5, "seen_ids": {}, "node_id": "node-a", "worker_pid": 42}
