"""Optuna search: resume reuses finished trials, failures are recorded, patience, pruning rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from mlac.audit.search import (
    InProcessExecutor,
    SearchConfig,
    SearchSpace,
    StudyDriver,
    StudyKey,
    open_storage,
)
from mlac.audit.trial import PruneRule, TrialSpec, WorkerContext
from mlac.errors import ConfigError, StoppedError

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = SearchSpace(lr_low=1e-3, lr_high=3e-2, steps_min=10, steps_max=30, steps_step=10, batch_sizes=(12,), kinds=("probe",))


class Counting(InProcessExecutor):
    """In-process executor that counts executions and can fail chosen calls."""

    def __init__(self, fail_calls: set[int] | None = None) -> None:
        super().__init__(WorkerContext())
        self.fail_calls = fail_calls or set()

    def map(self, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for spec in specs:
            if self.executed in self.fail_calls:
                self.executed += 1
                out.append({"ok": False, "error": "Traceback (most recent call last):\nRuntimeError: boom"})
            else:
                out.extend(super().map([spec]))
        return out


def _driver(ckpt: Path, dataset: Path, storage: Any, executor: Any, cfg: SearchConfig, **kw: Any) -> StudyDriver:
    key = StudyKey("tiny", str(ckpt), "harmful", 40, 0)
    spec = TrialSpec(checkpoint=str(ckpt), dataset=str(dataset), task="harmful", n=40, subset_seed=0, params={},
                     trial_seed=0, eval_every=10, selection_max=100, report_max=100)
    return StudyDriver(key, spec, SPACE, cfg, model_sha="sha-test", data_fingerprint="data-test", storage=storage, executor=executor, **kw)


def test_resume_reuses_finished_trials(tmp_path: Path, tiny_checkpoint: Path, audit_dataset: Path) -> None:
    torch.set_num_threads(1)
    cfg = SearchConfig(max_trials=6, patience=100, reruns=2, eval_every=10, tpe_startup_trials=2)
    url = f"journal:{tmp_path / 'optuna.journal'}"
    first = Counting()
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return first.executed >= 3

    with pytest.raises(StoppedError):
        _driver(tiny_checkpoint, audit_dataset, open_storage(url), first, cfg, should_stop=stop_after_three).run()
    assert first.executed == 3
    second = Counting()
    result = _driver(tiny_checkpoint, audit_dataset, open_storage(url), second, cfg).run()
    assert second.executed == (6 - 3) + 2  # only the missing trials plus the reruns
    assert result.trials_run == 6 and len(result.rerun_accuracies) == 2
    assert [h["trial"] for h in result.trial_history] == [1, 2, 3, 4, 5, 6]
    third = Counting()
    again = _driver(tiny_checkpoint, audit_dataset, open_storage(url), third, cfg).run()
    assert third.executed == 0 and again.report_accuracy == result.report_accuracy
    # The resumed study sampled exactly what an uninterrupted one samples, and ends at the same point.
    whole = _driver(tiny_checkpoint, audit_dataset, None, Counting(), cfg)
    uninterrupted = whole.run()
    resumed = optuna.load_study(study_name=whole.study.study_name, storage=open_storage(url))
    assert [t.params for t in resumed.trials] == [t.params for t in whole.study.trials]
    assert uninterrupted.report_accuracy == result.report_accuracy


def test_failed_trial_is_recorded_and_search_continues(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    cfg = SearchConfig(max_trials=4, patience=100, reruns=1, eval_every=10, tpe_startup_trials=2)
    driver = _driver(tiny_checkpoint, audit_dataset, None, Counting(fail_calls={1}), cfg)
    result = driver.run()
    failed = [t for t in driver.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and "RuntimeError: boom" in failed[0].user_attrs["error"]
    assert result.trials_run == 4 and result.failed_trials == 1


def test_patience_stops_the_search(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    cfg = SearchConfig(max_trials=30, patience=2, reruns=1, eval_every=10, tpe_startup_trials=2)
    ex = Counting()
    result = _driver(tiny_checkpoint, audit_dataset, None, ex, cfg).run()
    best = max(range(result.trials_run), key=lambda i: (result.trial_history[i]["best_selection_acc_so_far"] or 0, -i))
    assert result.trials_run < 30
    assert result.trials_run - 1 - best == 2  # exactly `patience` trials after the last improvement


def test_prune_rule_median() -> None:
    ref = (((10, 0.6), (20, 0.7)), ((10, 0.5), (20, 0.8)), ((10, 0.4), (20, 0.9)))
    rule = PruneRule(ref, min_reference=3)
    assert rule.should_prune([(10, 0.3)])
    assert not rule.should_prune([(10, 0.55)])
    assert rule.should_prune([(10, 0.55), (20, 0.6)])  # median best-so-far at 20 is 0.8
    assert not PruneRule(ref[:2], min_reference=3).should_prune([(10, 0.0)])
    assert not PruneRule(ref, min_reference=3, warmup_steps=20).should_prune([(10, 0.0)])
    assert PruneRule.from_dict(rule.to_dict()) == rule


def test_search_space_and_config_errors() -> None:
    with pytest.raises(ConfigError, match="empty"):
        SearchSpace(kinds=())
    with pytest.raises(ConfigError, match="empty"):
        SearchSpace(batch_sizes=())
    with pytest.raises(ConfigError, match="steps range"):
        SearchSpace(steps_min=500, steps_max=100)
    with pytest.raises(ConfigError, match="unknown kinds"):
        SearchSpace(kinds=("adapter",))
    with pytest.raises(ConfigError):
        SearchConfig(max_trials=0)
    with pytest.raises(ConfigError, match="storage"):
        open_storage("nowhere")


def test_study_name_is_deterministic_and_budget_free(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    from dataclasses import replace

    from mlac.audit.search import study_identity, study_name

    key = StudyKey("tiny", str(tiny_checkpoint), "harmful", 40, 0)
    spec = TrialSpec(checkpoint=str(tiny_checkpoint), dataset=str(audit_dataset), task="harmful", n=40, subset_seed=0,
                     params={}, trial_seed=0)
    cfg = SearchConfig(max_trials=6)

    def name(**kw: Any) -> str:
        args: dict[str, Any] = {"key": key, "base_spec": spec, "space": SPACE, "config": cfg, "model_sha": "a", "data": "d"}
        args.update(kw)
        ident = study_identity(args["key"], args["base_spec"], args["space"], args["config"], model_sha=args["model_sha"],
                               data_fingerprint=args["data"], namespace=args.get("namespace"))
        return study_name(args["key"], ident)

    assert name() == name()
    assert name(config=replace(cfg, max_trials=50, patience=3, reruns=15)) == name()  # a larger budget resumes
    assert name(base_spec=replace(spec, checkpoint="/elsewhere", dataset="/moved.parquet")) == name()  # content, not paths
    for changed in (name(model_sha="b"), name(data="e"), name(space=replace(SPACE, kinds=("probe", "full"))),
                    name(key=replace(key, seed=1)), name(config=replace(cfg, parallelism=2)),
                    name(base_spec=replace(spec, subset_seed=9)), name(namespace="job-1")):
        assert changed != name()
    assert name(namespace="job-1") == name(namespace="job-1") != name(namespace="job-2")


def test_jobs_sharing_a_storage_keep_their_own_studies(tmp_path: Path, tiny_checkpoint: Path, audit_dataset: Path) -> None:
    """Two identical searches in one database: a namespace each keeps them apart, the same one resumes."""
    torch.set_num_threads(1)
    cfg = SearchConfig(max_trials=2, patience=100, reruns=1, eval_every=10, tpe_startup_trials=2)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second, again = Counting(), Counting(), Counting()
    a = _driver(tiny_checkpoint, audit_dataset, open_storage(url), first, cfg, namespace="job-a")
    a.run()
    b = _driver(tiny_checkpoint, audit_dataset, open_storage(url), second, cfg, namespace="job-b")
    b.run()
    assert a.study.study_name != b.study.study_name
    assert first.executed == second.executed == 2 + 1  # job b ran its own trials, not job a's
    _driver(tiny_checkpoint, audit_dataset, open_storage(url), again, cfg, namespace="job-a").run()
    assert again.executed == 0  # job a, resumed, finds its own finished trials
    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(url))}
    assert names == {a.study.study_name, b.study.study_name}


def test_trial_left_running_by_a_crash_is_requeued(tmp_path: Path, tiny_checkpoint: Path, audit_dataset: Path) -> None:
    cfg = SearchConfig(max_trials=3, patience=100, reruns=1, eval_every=10, tpe_startup_trials=2)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    crashed = _driver(tiny_checkpoint, audit_dataset, open_storage(url), Counting(), cfg)
    specs = crashed.next_specs()  # asked, never told: the process "died" here
    lost = specs[0]["params"]
    ex = Counting()
    result = _driver(tiny_checkpoint, audit_dataset, open_storage(url), ex, cfg).run()
    trials = result.trial_history
    assert len(trials) == 3 and ex.executed == 2 + 1  # the FAIL counts toward the budget; one rerun
    study = optuna.load_study(study_name=crashed.study.study_name, storage=url)
    first, second = study.trials[0], study.trials[1]
    assert first.state == optuna.trial.TrialState.FAIL and "interrupted" in first.user_attrs["error"]
    assert second.user_attrs["attack_params"] == lost  # the lost configuration ran again
