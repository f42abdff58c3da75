"""Trial results are written once per (job, study, trial): a retried trial is never counted twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from workers.executor import execute_trial
from workers.trial_store import TrialResultStore, spec_hash


def _spec(trial_seed: int = 7, **changes: Any) -> dict[str, Any]:
    spec = {"checkpoint": "/nowhere/ckpt", "dataset": "/nowhere/data.parquet", "task": "harmful", "n": 20,
            "subset_seed": 3, "params": {"kind": "probe", "lr": 0.01}, "trial_seed": trial_seed, "device": "cpu",
            "tag": {"model": "base", "task": "harmful", "n": 20, "seed": 0}}
    spec.update(changes)
    return spec


def test_first_write_wins(tmp_path: Path) -> None:
    store = TrialResultStore(tmp_path)
    first, mine = store.put_once(_spec(), {"ok": True, "report_accuracy": 0.6})
    assert mine and first["report_accuracy"] == 0.6
    second, mine2 = store.put_once(_spec(), {"ok": True, "report_accuracy": 0.9})
    assert not mine2 and second["report_accuracy"] == 0.6
    assert store.get(_spec())["report_accuracy"] == 0.6
    assert store.count() == 1


def test_concurrent_attempts_store_exactly_one(tmp_path: Path) -> None:
    store = TrialResultStore(tmp_path)
    outcomes: list[tuple[dict[str, Any], bool]] = []
    lock = threading.Lock()

    def attempt(value: float) -> None:
        got = store.put_once(_spec(), {"ok": True, "report_accuracy": value})
        with lock:
            outcomes.append(got)

    threads = [threading.Thread(target=attempt, args=(i / 10,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(mine for _, mine in outcomes) == 1
    assert len({r["report_accuracy"] for r, _ in outcomes}) == 1
    assert store.count() == 1 and not list(tmp_path.rglob(".tmp-*"))


def test_keys_separate_trials_studies_and_specs(tmp_path: Path) -> None:
    store = TrialResultStore(tmp_path)
    variants = [_spec(), _spec(trial_seed=8), _spec(tag={"model": "base", "task": "harmful", "n": 20, "seed": 1}),
                _spec(params={"kind": "probe", "lr": 0.02})]
    assert len({store.path(v) for v in variants}) == 4
    assert spec_hash(_spec(device="cpu")) == spec_hash(_spec(device="cuda"))  # where it ran is not what it is


def test_a_retried_trial_returns_the_stored_result_without_running(tmp_path: Path) -> None:
    store = TrialResultStore(tmp_path)
    store.put_once(_spec(), {"ok": True, "report_accuracy": 0.55})
    # The checkpoint path does not exist: running the trial would fail, so this proves it was not re-run.
    result = execute_trial(_spec(), 1.0, str(tmp_path))
    assert result["ok"] and result["report_accuracy"] == 0.55 and result["reused"] is True
