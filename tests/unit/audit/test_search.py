"""Optuna search: resume reuses finished trials, failures are recorded, patience, pruning rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from mlac.attacks import AttackParams
from mlac.audit.scheduling import InProcessExecutor
from mlac.audit.space import SearchConfig, SearchSpace, reference_grid
from mlac.audit.storage import VERSION_ATTR, check_study_version, open_storage
from mlac.audit.study import StudyDriver, _since_best
from mlac.audit.trial import PruneRule, TrialSpec, WorkerContext
from mlac.contracts import ProgressEvent, StudyKey
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


def test_the_space_accepts_every_registered_attack_kind() -> None:
    """Kinds are checked against the attack registry when a space is made: one registered at run time passes."""
    from mlac.attacks import attack_kinds, get_attack, register_attack, unregister_attack

    assert SearchSpace(kinds=attack_kinds()).kinds == attack_kinds()
    register_attack("probe_again", get_attack("probe"))
    try:
        assert SearchSpace(kinds=("probe", "probe_again")).kinds == ("probe", "probe_again")
    finally:
        unregister_attack("probe_again")
    with pytest.raises(ConfigError, match="unknown kinds"):
        SearchSpace(kinds=("probe_again",))


def test_study_name_is_deterministic_and_budget_free(tiny_checkpoint: Path, audit_dataset: Path) -> None:
    from dataclasses import replace

    from mlac.audit.study import study_identity, study_name

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


def _trials(driver: StudyDriver) -> list[tuple[int, str, Any, Any, dict[int, float]]]:
    return [(t.number, t.state.name, t.value, t.user_attrs.get("attack_params"), dict(t.intermediate_values))
            for t in driver.study.get_trials(deepcopy=False)]


def test_a_crash_with_trials_in_flight_changes_nothing(tmp_path: Path, tiny_checkpoint: Path, audit_dataset: Path) -> None:
    """Kill with a batch in flight, resume: the same trials under the same numbers, seeds and prune rules, no
    extra budget, and a result identical to an undisturbed run."""
    torch.set_num_threads(1)
    cfg = SearchConfig(max_trials=5, patience=100, reruns=2, eval_every=10, tpe_startup_trials=2, parallelism=2,
                       prune_min_reference=1, prune_warmup_fraction=0.0)
    undisturbed = _driver(tiny_checkpoint, audit_dataset, open_storage(f"sqlite:///{tmp_path / 'a.db'}"), Counting(), cfg)
    reference = undisturbed.run()
    url = f"sqlite:///{tmp_path / 'b.db'}"
    crashed = _driver(tiny_checkpoint, audit_dataset, open_storage(url), Counting(), cfg)
    crashed.deliver(Counting().map(crashed.next_specs()))  # the first batch finished
    in_flight = crashed.next_specs()  # the second batch was running when the process died
    assert len(in_flight) == 2
    ex = Counting()
    events: list[ProgressEvent] = []
    resumed_driver = _driver(tiny_checkpoint, audit_dataset, open_storage(url), ex, cfg, on_trial=events.append)
    assert [e.trial for e in events if e.replayed] == [0, 1]  # finished trials announced again
    resumed = resumed_driver.run()
    assert ex.executed == 2 + 1 + 2  # the interrupted two, the fifth, two reruns: nothing else, no extra budget
    assert _trials(resumed_driver) == _trials(undisturbed)
    assert resumed.report_accuracy == reference.report_accuracy
    assert resumed.rerun_accuracies == reference.rerun_accuracies and resumed.best_params == reference.best_params
    assert resumed.trials_run == reference.trials_run == 5 and resumed.failed_trials == 0


def test_grid_start_runs_the_reference_grid_first(tmp_path: Path, tiny_checkpoint: Path, audit_dataset: Path) -> None:
    """With grid_start the first trials are the reference grid, and patience waits until it has run."""
    space = SearchSpace(lr_low=1e-4, lr_high=3e-2, steps_min=10, steps_max=30, steps_step=10, batch_sizes=(12,),
                        kinds=("probe",))
    cfg = SearchConfig(max_trials=5, patience=1, reruns=1, eval_every=10, tpe_startup_trials=2, grid_start=True)
    key = StudyKey("tiny", str(tiny_checkpoint), "harmful", 40, 0)
    spec = TrialSpec(checkpoint=str(tiny_checkpoint), dataset=str(audit_dataset), task="harmful", n=40, subset_seed=0,
                     params={}, trial_seed=0, eval_every=10, selection_max=100, report_max=100)
    driver = StudyDriver(key, spec, space, cfg, model_sha="sha-test", data_fingerprint="data-test", storage=None,
                         executor=Counting())
    driver.run()
    grid = reference_grid(space)
    assert [(p.kind, p.lr, p.steps) for p in grid] == [("probe", lr, 30) for lr in (1e-4, 3e-4, 1e-3, 3e-3)]
    ran = [AttackParams.from_dict(t.user_attrs["attack_params"]) for t in driver.study.trials]
    assert ran[:4] == grid  # the grid, in order, before anything TPE proposes
    # what optuna-dashboard shows: the model in the name, the study's identity in its attributes
    assert driver.study.study_name.startswith("mlac-audit:tiny:harmful:n40:s0:")
    attrs = driver.study.user_attrs
    assert (attrs["model"], attrs["task"], attrs["n"], attrs["seed"], attrs["model_sha256"]) == ("tiny", "harmful", 40, 0, "sha-test")
    assert len(ran) >= 4  # patience 1 did not stop the search inside the grid


def test_pruned_trials_do_not_count_toward_patience() -> None:
    def frozen(number: int, state: TrialState, value: float | None) -> FrozenTrial:
        return optuna.trial.create_trial(state=state, value=value) if state == TrialState.COMPLETE else \
            optuna.trial.create_trial(state=state)

    trials = [frozen(0, TrialState.COMPLETE, 0.8), frozen(1, TrialState.PRUNED, None), frozen(2, TrialState.PRUNED, None),
              frozen(3, TrialState.COMPLETE, 0.7)]
    for i, t in enumerate(trials):
        t.number = i
    assert _since_best(trials) == 1


def test_a_study_from_another_optuna_major_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    check_study_version(study)
    assert study.user_attrs[VERSION_ATTR] == optuna.__version__
    study.enqueue_trial({"x": 1.0})
    study.set_user_attr(VERSION_ATTR, "3.6.1")
    with pytest.raises(ConfigError, match=r"written by Optuna 3\.6\.1"):
        check_study_version(optuna.load_study(study_name="s", storage=url))

